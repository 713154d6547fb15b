package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/metrics"
	"github.com/aion-dispatch/dispatch/router"
)

// stepClock returns a clock that is step later on every call.
func stepClock(step time.Duration) func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(step)
		return t
	}
}

// stubRouter answers every Select with d and err.
type stubRouter struct {
	d   engine.Decision
	err error
}

func (s stubRouter) Select(context.Context, engine.Selection) (engine.Decision, error) {
	return s.d, s.err
}

func selection(t testing.TB, ch engine.ChannelName) engine.Selection {
	t.Helper()
	return engine.Selection{WorkflowID: "wf-1", Channel: ch, ConversationID: "c1", Attempt: 1,
		Candidates: []engine.Worker{
			{State: engine.ConsumerStateView{ID: "w1", InFlight: 1, MaxInFlight: 2}},
			{State: engine.ConsumerStateView{ID: "w2", MaxInFlight: 2}},
		}}
}

// The wrapper returns the native router's decision and times the call,
// with the version the decision names.
func TestRouterTimesTheNativeRouter(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	metrics.SetClock(m, stepClock(3*time.Microsecond)) // every call takes 3µs
	native := router.NewNative("least-loaded", router.LeastLoaded)
	r := m.Router(native)
	ch := channel(t, "payments", "charge")
	in := selection(t, ch)
	want, wantErr := native.Select(t.Context(), in)
	for range 2 {
		d, err := r.Select(t.Context(), in)
		if !reflect.DeepEqual(d, want) || err != wantErr {
			t.Fatalf("Select = %+v, %v; the native router said %+v, %v", d, err, want, wantErr)
		}
	}
	if want.WorkerID != "w2" {
		t.Fatalf("the native router chose %q, want w2", want.WorkerID)
	}
	// Two calls of 3µs: both in the 4µs bucket.
	compare(t, reg, `
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="1e-06"} 0
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="2e-06"} 0
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="4e-06"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="8e-06"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="1.6e-05"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="3.2e-05"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="6.4e-05"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="0.000128"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="0.000256"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="0.000512"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="0.001024"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="0.002048"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="0.004096"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="0.008192"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="0.016384"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="0.032768"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="0.065536"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="0.131072"} 2
dispatch_script_duration_seconds_bucket{channel="payments/charge",hash="",lang="go",le="+Inf"} 2
dispatch_script_duration_seconds_sum{channel="payments/charge",hash="",lang="go"} 6e-06
dispatch_script_duration_seconds_count{channel="payments/charge",hash="",lang="go"} 2
`, "dispatch_script_duration_seconds")
}

// A script's hash labels its durations, without its "sha256:" prefix and
// cut to 12 characters; a reload to another version starts another series.
func TestRouterLabelsTheScriptVersion(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	ch := channel(t, "payments", "charge")
	compile := func(src string) *router.Script {
		t.Helper()
		prog, err := router.NewCompiler(router.Limits{}).Compile(router.Lua, "pick.lua", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return router.NewScript(prog, "pick.lua", time.Second)
	}
	v1 := compile(`function route(request, candidates, excluded) return candidates[1].id end`)
	v2 := compile(`function route(request, candidates, excluded) return candidates[2].id end`)
	for _, s := range []*router.Script{v1, v2, v2} {
		d, err := m.Router(s).Select(t.Context(), selection(t, ch))
		if err != nil || d.Version != s.Version() {
			t.Fatalf("Select = %+v, %v", d, err)
		}
	}
	for _, c := range []struct {
		s    *router.Script
		want uint64
	}{{v1, 1}, {v2, 2}} {
		hash := c.s.Version().Hash
		if len(hash) != len("sha256:")+64 {
			t.Fatalf("hash %q is not a sha256", hash)
		}
		labels := map[string]string{"channel": "payments/charge", "lang": "lua", "hash": hash[len("sha256:"):][:12]}
		if count, _ := histogram(t, reg, "dispatch_script_duration_seconds", labels); count != c.want {
			t.Errorf("%v: %d calls, want %d", labels, count, c.want)
		}
	}
}

// Each kind of routing error is counted under its kind, and the wrapper
// returns what the router returned, error and decision alike.
func TestRouterCountsErrorKinds(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	ch := channel(t, "payments", "charge")
	lua := engine.RouterVersion{Lang: "lua", Hash: "sha256:abcdef0123456789", Source: "x.lua"}
	errs := []error{
		fmt.Errorf("x.lua (lua abcdef012345): %w after 20ms", router.ErrScriptTimeout),
		fmt.Errorf("route: %w", context.DeadlineExceeded),
		fmt.Errorf("x.lua (lua abcdef012345): %w: its calls keep timing out", router.ErrScriptThrottled),
		fmt.Errorf("x.lua (lua abcdef012345) returned 7: %w", router.ErrBadDecision),
		&router.ScriptError{Lang: router.Lua, File: "x.lua", Line: 3, Message: "attempt to index a nil value"},
		fmt.Errorf("wrapped: %w", &router.ScriptError{Lang: router.Lua, File: "x.lua", Message: "boom"}),
		context.Canceled,
		errors.New("policy panicked"),
	}
	for _, want := range errs {
		d, err := m.Router(stubRouter{d: engine.Decision{Version: lua}, err: want}).Select(t.Context(), selection(t, ch))
		if err != want || d != (engine.Decision{Version: lua}) {
			t.Errorf("Select = %+v, %v; want the router's %v", d, err, want)
		}
	}
	// A channel no router serves: counted under channel "", with no
	// version.
	unknown := fmt.Errorf("%w: no router for nowhere/q", engine.ErrUnknownChannel)
	d, err := m.Router(stubRouter{err: unknown}).Select(t.Context(), selection(t, channel(t, "nowhere", "q")))
	if err != unknown || d != (engine.Decision{}) {
		t.Errorf("Select = %+v, %v; want the router's %v", d, err, unknown)
	}
	compare(t, reg, `
dispatch_script_errors_total{channel="",kind="unknown_channel"} 1
dispatch_script_errors_total{channel="payments/charge",kind="bad_decision"} 1
dispatch_script_errors_total{channel="payments/charge",kind="other"} 2
dispatch_script_errors_total{channel="payments/charge",kind="script_error"} 2
dispatch_script_errors_total{channel="payments/charge",kind="throttled"} 1
dispatch_script_errors_total{channel="payments/charge",kind="timeout"} 2
`, "dispatch_script_errors_total")
	// Failed calls are timed too.
	if count, _ := histogram(t, reg, "dispatch_script_duration_seconds",
		map[string]string{"channel": "payments/charge", "lang": "lua", "hash": "abcdef012345"}); count != uint64(len(errs)) {
		t.Errorf("%d failed calls timed, want %d", count, len(errs))
	}
	if count, _ := histogram(t, reg, "dispatch_script_duration_seconds",
		map[string]string{"channel": "", "lang": "", "hash": ""}); count != 1 {
		t.Errorf("%d calls for an unknown channel timed, want 1", count)
	}
}

// The errors real routers return are counted under their kinds: a script
// that fails, one that names no candidate, one that runs past its
// deadline, and a table that does not serve the channel.
func TestRouterCountsRealErrors(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	ch := channel(t, "payments", "charge")
	table := router.NewTable()
	compile := func(src string, timeout time.Duration) {
		t.Helper()
		prog, err := router.NewCompiler(router.Limits{}).Compile(router.Lua, "r.lua", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		table.Set(ch, router.NewScript(prog, "r.lua", timeout))
	}
	r := m.Router(table)
	sel := selection(t, ch)
	for _, c := range []struct {
		src     string
		timeout time.Duration
		is      func(error) bool
	}{
		{`function route(request, candidates, excluded) error("boom") end`, time.Second,
			func(err error) bool { var se *router.ScriptError; return errors.As(err, &se) }},
		{`function route(request, candidates, excluded) return "nobody" end`, time.Second,
			func(err error) bool { return errors.Is(err, router.ErrBadDecision) }},
		{`function route(request, candidates, excluded) while true do end end`, time.Millisecond,
			func(err error) bool { return errors.Is(err, router.ErrScriptTimeout) }},
	} {
		compile(c.src, c.timeout)
		if _, err := r.Select(t.Context(), sel); !c.is(err) {
			t.Fatalf("%s: Select returned %v", c.src, err)
		}
	}
	if _, err := r.Select(t.Context(), selection(t, channel(t, "nowhere", "q"))); !errors.Is(err, engine.ErrUnknownChannel) {
		t.Fatalf("a channel the table does not serve: %v", err)
	}
	compare(t, reg, `
dispatch_script_errors_total{channel="",kind="unknown_channel"} 1
dispatch_script_errors_total{channel="payments/charge",kind="bad_decision"} 1
dispatch_script_errors_total{channel="payments/charge",kind="other"} 0
dispatch_script_errors_total{channel="payments/charge",kind="script_error"} 1
dispatch_script_errors_total{channel="payments/charge",kind="throttled"} 0
dispatch_script_errors_total{channel="payments/charge",kind="timeout"} 1
`, "dispatch_script_errors_total")
}
