package journal

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// TestStampMatchesAppendFormat checks the cached formatter against
// time.RFC3339Nano, in sequences that stay within a second, cross one, and
// jump around, with nanoseconds that have trailing zeros and none.
func TestStampMatchesAppendFormat(t *testing.T) {
	base := time.Date(2026, 11, 26, 23, 59, 59, 0, time.UTC)
	times := []time.Time{
		base, base.Add(1), base.Add(10), base.Add(500 * time.Millisecond), base.Add(999_999_999),
		base.Add(time.Second), base.Add(time.Second + 120*time.Microsecond), base, // back again
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 5, time.UTC), // before the epoch: Unix() is negative
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 7, time.UTC),
		time.Date(2026, 3, 29, 2, 30, 0, 100, time.FixedZone("X", 5*3600+1800)), // not UTC
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		times = append(times, base.Add(time.Duration(r.Int64N(int64(3*time.Second)))))
	}
	var s stamp
	for _, tm := range times {
		got := string(s.append([]byte("x"), tm))
		want := "x" + tm.UTC().Format(time.RFC3339Nano)
		if got != want {
			t.Fatalf("%v: got %s, want %s", tm, got, want)
		}
	}
}

// gatedWriter holds every Write until the test opens the gate, and counts
// what it was given.
type gatedWriter struct {
	started chan struct{} // one send when the first Write begins
	gate    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	n       int
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.started) })
	<-g.gate
	g.mu.Lock()
	g.n += len(p)
	g.mu.Unlock()
	return len(p), nil
}

// TestPendingIsBounded: with the output stuck, Records without a sync
// buffer up to pendingLimit and then wait, rather than growing the buffer
// for as long as dispatches go on; once the output moves, every line is
// written. The Records run under a cancelled context, so that the one that
// would wait returns at once with the context's error.
func TestPendingIsBounded(t *testing.T) {
	g := &gatedWriter{started: make(chan struct{}), gate: make(chan struct{})}
	w := NewWriter(g, Options{Fsync: FsyncNever, Interval: time.Hour})
	op := engine.Operation{Kind: engine.OpMessageSent, ConversationID: "c1", WorkerID: strings.Repeat("w", 1000)}
	body, err := op.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	lines := 3 * pendingLimit / len(body) // more than the flusher's batch and the pending limit together
	recorded := 0
	for recorded < lines {
		err := w.Record(ctx, op)
		recorded++ // a Record that waits has buffered its line first
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			break
		}
	}
	if recorded == lines {
		t.Fatalf("all %d Records returned without waiting while the output was stuck", lines)
	}
	w.mu.Lock()
	n := len(w.pending)
	w.mu.Unlock()
	if limit := pendingLimit + 2*len(body); n > limit {
		t.Fatalf("pending grew to %d bytes, want at most %d", n, limit)
	}
	<-g.started // the flusher took a batch and holds it
	close(g.gate)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if g.n < recorded*len(body) {
		t.Fatalf("wrote %d bytes, want at least %d for %d lines", g.n, recorded*len(body), recorded)
	}
}
