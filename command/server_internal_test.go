//go:build linux

package command

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// TestRestartBackoff: an instance that exits without answering makes the
// next start wait, twice as long each time in a row, up to the maximum; one
// that answered restarts at once. The clock is fixed and the waits are
// recorded rather than slept.
func TestRestartBackoff(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s, err := StartServer(ServerOptions{
		Program:        Program{Path: exe, Env: []string{"COMMAND_TEST_HELPER=serve", "GORACE=atexit_sleep_ms=0"}},
		RestartBackoff: 100 * time.Millisecond, MaxRestartBackoff: 250 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Shutdown(context.Background()) }()
	var waits []time.Duration
	fixed := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s.mu.Lock()
	s.now = func() time.Time { return fixed }
	s.sleep = func(_ context.Context, d time.Duration, _ <-chan struct{}) error {
		waits = append(waits, d)
		return nil
	}
	s.mu.Unlock()

	run := func(input string) engine.ActivityResult {
		t.Helper()
		res, err := s.Handle(context.Background(), engine.ActivityRequest{
			Input: engine.Payload{ContentType: "application/json", Data: []byte(input)}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	ms := time.Millisecond
	steps := []struct {
		input string
		waits []time.Duration // all the waits so far
	}{
		{`{"crash": "1"}`, nil}, // the first instance, started by StartServer
		{`{"crash": "2"}`, []time.Duration{100 * ms}},
		{`{"crash": "3"}`, []time.Duration{100 * ms, 200 * ms}},
		{`{"echo": 1}`, []time.Duration{100 * ms, 200 * ms, 250 * ms}},    // capped
		{`{"crash": "4"}`, []time.Duration{100 * ms, 200 * ms, 250 * ms}}, // this instance answered: no wait
		{`{"echo": 2}`, []time.Duration{100 * ms, 200 * ms, 250 * ms}},
		{`{"crash": "5"}`, []time.Duration{100 * ms, 200 * ms, 250 * ms}},
		{`{"crash": "6"}`, []time.Duration{100 * ms, 200 * ms, 250 * ms}},
		{`{"echo": 3}`, []time.Duration{100 * ms, 200 * ms, 250 * ms, 100 * ms}}, // the backoff starts again
	}
	for i, st := range steps {
		res := run(st.input)
		crash := strings.Contains(st.input, "crash")
		if crash != (res.Status == engine.StatusFailed) {
			t.Errorf("step %d %s: %+v", i, st.input, res)
		}
		if !slices.Equal(waits, st.waits) {
			t.Errorf("step %d %s: waits %v, want %v", i, st.input, waits, st.waits)
		}
	}
	if st := s.Stats(); st.Starts != 7 || st.Exits != 6 {
		t.Errorf("stats %+v", st)
	}
}
