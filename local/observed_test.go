package local_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
)

// fakeClock moves only when the test says.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// figures is the observed part of a view.
type figures struct {
	ewma, peak, errors float64
	exits              int
}

func figuresOf(v engine.ConsumerStateView) figures {
	return figures{v.LatencyEWMA, v.LatencyPeakEWMA, v.ErrorRate, v.Exits}
}

func (f figures) near(g figures) bool {
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9 }
	return close(f.ewma, g.ewma) && close(f.peak, g.peak) && close(f.errors, g.errors) && f.exits == g.exits
}

// TestObservedFigures: what a conversation receives of a worker (its
// answers, how long they took, its exits, an activity given up on) is in
// the worker's view at the next snapshot, and a worker restarted in place
// keeps it.
func TestObservedFigures(t *testing.T) {
	ch := channel(t)
	clock := &fakeClock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	p := local.NewPool(local.WithClock(clock))
	t.Cleanup(func() { p.Close(context.Background()) })
	answers := make(chan engine.ActivityResult)
	handler := func(ctx context.Context, _ engine.ActivityRequest) engine.ActivityResult {
		select {
		case r := <-answers:
			return r
		case <-ctx.Done():
			return engine.Failed("cancelled")
		}
	}
	cfg := local.WorkerConfig{ID: "w1", MaxInFlight: 4, Handler: handler}
	if _, err := p.Start(ch, cfg); err != nil {
		t.Fatal(err)
	}
	view := func() figures {
		t.Helper()
		ws := snapshot(t, p, ch)
		if len(ws) != 1 {
			t.Fatalf("%d workers, want 1", len(ws))
		}
		return figuresOf(ws[0].State)
	}
	// answer runs one activity that the worker answers with r after d.
	answer := func(wf string, d time.Duration, r engine.ActivityResult) {
		t.Helper()
		c := open(t, p, ch, snapshot(t, p, ch)[0], wf)
		defer c.Close()
		clock.advance(d)
		answers <- r
		if ev, err := c.Receive(context.Background()); err != nil || ev.Kind != engine.EventResponse {
			t.Fatalf("receive: %+v, %v", ev, err)
		}
	}

	if got := view(); got != (figures{}) {
		t.Fatalf("a new worker has figures %+v; want none", got)
	}
	answer("wf-1", 20*time.Millisecond, engine.Completed(engine.Payload{}))
	if got, want := view(), (figures{ewma: 0.02, peak: 0.02}); !got.near(want) {
		t.Fatalf("after one answer in 20ms: %+v, want %+v", got, want)
	}
	answer("wf-2", 0, engine.Failed("no"))
	// The second answer came at once: no time passed, so both count alike.
	if got, want := view(), (figures{ewma: 0.01, peak: 0.02, errors: 0.5}); !got.near(want) {
		t.Fatalf("after a failed answer: %+v, want %+v", got, want)
	}

	// Given up on after 2s: a latency sample, no answer.
	c := open(t, p, ch, snapshot(t, p, ch)[0], "wf-3")
	clock.advance(2 * time.Second)
	c.Close()
	// The error rate decays for the 2s since the last answer, as if
	// nothing happened: an activity given up on is no answer.
	decayed := 0.5 * math.Exp2(-float64(2*time.Second)/float64(engine.ObservedHalfLife))
	got := view()
	if got.peak <= 1.5 || math.Abs(got.errors-decayed) > 1e-9 || got.ewma <= 0.01 {
		t.Fatalf("after an activity given up on after 2s: %+v; want the peak near 2s and the error rate %v", got, decayed)
	}

	// An exit counts, and stays with the id across a restart in place.
	c = open(t, p, ch, snapshot(t, p, ch)[0], "wf-4")
	for _, w := range snapshot(t, p, ch) {
		w.Participant.(*local.Worker).Stop("crashed")
	}
	if ev, err := c.Receive(context.Background()); err != nil || ev.Kind != engine.EventWorkerExited {
		t.Fatalf("receive: %+v, %v", ev, err)
	}
	c.Close()
	if _, err := p.Start(ch, cfg); err != nil {
		t.Fatal(err)
	}
	if got := view(); got.exits != 1 || math.Abs(got.errors-decayed) > 1e-9 {
		t.Fatalf("after an exit and a restart: %+v; want 1 exit and the figures kept", got)
	}
	clock.advance(engine.ObservedExitWindow)
	if got := view(); got.exits != 0 {
		t.Fatalf("an exit a window ago still counts: %+v", got)
	}
}

// TestReportedLatency: in a pool made WithReportedLatency, the latency a
// handler reports is the one that counts; elsewhere, reporting does
// nothing.
func TestReportedLatency(t *testing.T) {
	ch := channel(t)
	frozen := &fakeClock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		name string
		opts []local.Option
		want float64
	}{
		{"reported", []local.Option{local.WithClock(frozen), local.WithReportedLatency()}, 0.007},
		{"not allowed", []local.Option{local.WithClock(frozen)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := local.NewPool(tc.opts...)
			t.Cleanup(func() { p.Close(context.Background()) })
			reported := make(chan bool, 1)
			_, err := p.Start(ch, local.WorkerConfig{ID: "w1", Handler: func(ctx context.Context, _ engine.ActivityRequest) engine.ActivityResult {
				reported <- local.ReportLatency(ctx, 7*time.Millisecond)
				return engine.Completed(engine.Payload{})
			}})
			if err != nil {
				t.Fatal(err)
			}
			c := open(t, p, ch, snapshot(t, p, ch)[0], "wf-1")
			if _, err := c.Receive(context.Background()); err != nil {
				t.Fatal(err)
			}
			c.Close()
			if ok := <-reported; ok != (tc.want != 0) {
				t.Errorf("ReportLatency = %v", ok)
			}
			if got := snapshot(t, p, ch)[0].State.LatencyEWMA; got != tc.want {
				t.Errorf("latency_ewma %v, want %v", got, tc.want)
			}
		})
	}
}

// TestExitSeenOnlyByClose: an activity whose worker exits before it is
// answered counts as an exit even if its conversation closes (a timeout,
// a cancellation) without receiving the exit.
func TestExitSeenOnlyByClose(t *testing.T) {
	ch := channel(t)
	p := newPool(t)
	w, err := p.Start(ch, local.WorkerConfig{ID: "w1", Handler: func(ctx context.Context, _ engine.ActivityRequest) engine.ActivityResult {
		<-ctx.Done()
		return engine.Failed("cancelled")
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, p, ch, snapshot(t, p, ch)[0], "wf-1")
	w.Stop("crashed")
	c.Close()
	if v := w.State(); v.Exits != 1 || v.LatencyEWMA != 0 {
		t.Errorf("after an exit its conversation closed on: %+v; want 1 exit and no latency sample", v)
	}
}
