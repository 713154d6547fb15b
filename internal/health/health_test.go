package health

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// event is one observation at an offset from t0.
type event struct {
	at   time.Duration
	kind string // "ok", "fail", "abandon", "exit"
	took time.Duration
}

func (e event) apply(tr *Tracker) {
	now := t0.Add(e.at)
	switch e.kind {
	case "ok":
		tr.Answered(now, e.took, false)
	case "fail":
		tr.Answered(now, e.took, true)
	case "abandon":
		tr.Abandoned(now, e.took)
	case "exit":
		tr.Exited(now)
	}
}

func TestFigures(t *testing.T) {
	const s, ms = time.Second, time.Millisecond
	hl := engine.ObservedHalfLife
	exits := func(n int, at time.Duration) []event {
		var out []event
		for range n {
			out = append(out, event{at: at, kind: "exit"})
		}
		return out
	}
	tests := []struct {
		name   string
		events []event
		readAt time.Duration
		want   engine.ConsumerStateView
	}{
		{"nothing observed", nil, 0, engine.ConsumerStateView{}},
		{"the first answer is the whole average", []event{{0, "ok", 20 * ms}}, 0,
			engine.ConsumerStateView{LatencyEWMA: 0.02, LatencyPeakEWMA: 0.02}},
		{"answers at one time count alike; the peak is the slowest",
			[]event{{0, "ok", 1 * s}, {0, "fail", 3 * s}, {0, "ok", 2 * s}, {0, "fail", 2 * s}}, 0,
			engine.ConsumerStateView{LatencyEWMA: 2, LatencyPeakEWMA: 3, ErrorRate: 0.5}},
		{"a sample a half-life old counts half",
			[]event{{0, "fail", 1 * s}, {hl, "ok", 4 * s}}, hl,
			engine.ConsumerStateView{LatencyEWMA: (0.5*1 + 4) / 1.5, LatencyPeakEWMA: 4, ErrorRate: 0.5 / 1.5}},
		{"the peak decays towards 0 while nothing is answered", []event{{0, "ok", 2 * s}}, 2 * hl,
			engine.ConsumerStateView{LatencyEWMA: 2, LatencyPeakEWMA: 0.5}},
		{"the error rate decays towards 0 while nothing is answered", []event{{0, "fail", 1 * s}, {0, "ok", 1 * s}}, hl,
			engine.ConsumerStateView{LatencyEWMA: 1, LatencyPeakEWMA: 0.5, ErrorRate: 0.25}},
		{"after a pause, a new answer outweighs the faded ones",
			[]event{{0, "fail", 1 * s}, {0, "fail", 1 * s}, {10 * hl, "ok", 1 * s}}, 10 * hl,
			engine.ConsumerStateView{LatencyEWMA: 1, LatencyPeakEWMA: 1, ErrorRate: 2 * 0x1p-10 / (2*0x1p-10 + 1)}},
		{"an abandoned activity does not stop the error rate decaying",
			[]event{{0, "fail", 1 * s}, {2 * hl, "abandon", 1 * s}}, 2 * hl,
			engine.ConsumerStateView{LatencyEWMA: (0.25 + 1) / 1.25, LatencyPeakEWMA: 1, ErrorRate: 0.25}},
		{"a faster sample moves the peak by the time that passed",
			[]event{{0, "ok", 2 * s}, {hl, "ok", 1 * s}}, hl,
			engine.ConsumerStateView{LatencyEWMA: (0.5*2 + 1) / 1.5, LatencyPeakEWMA: 1 + 0.5}},
		{"an abandoned activity moves latency, not errors",
			[]event{{0, "fail", 1 * s}, {0, "abandon", 5 * s}}, 0,
			engine.ConsumerStateView{LatencyEWMA: 3, LatencyPeakEWMA: 5, ErrorRate: 1}},
		{"exits count within the window", append(exits(2, 0), exits(3, time.Minute)...), time.Minute,
			engine.ConsumerStateView{Exits: 3}},
		{"exits count up to the limit", exits(engine.MaxObservedExits+5, 0), 0,
			engine.ConsumerStateView{Exits: engine.MaxObservedExits}},
		{"a clock that goes back counts as no time", []event{{hl, "ok", 1 * s}, {0, "ok", 3 * s}}, 0,
			engine.ConsumerStateView{LatencyEWMA: 2, LatencyPeakEWMA: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr Tracker
			for _, e := range tt.events {
				e.apply(&tr)
			}
			var got engine.ConsumerStateView
			tr.Fill(&got, t0.Add(tt.readAt))
			if !near(got.LatencyEWMA, tt.want.LatencyEWMA) || !near(got.LatencyPeakEWMA, tt.want.LatencyPeakEWMA) ||
				!near(got.ErrorRate, tt.want.ErrorRate) || got.Exits != tt.want.Exits {
				t.Errorf("got ewma %v peak %v errors %v exits %d, want %v %v %v %d", got.LatencyEWMA, got.LatencyPeakEWMA,
					got.ErrorRate, got.Exits, tt.want.LatencyEWMA, tt.want.LatencyPeakEWMA, tt.want.ErrorRate, tt.want.Exits)
			}
			if err := got.CheckObserved(); err != nil {
				t.Errorf("figures a tracker fills are refused: %v", err)
			}
		})
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestConcurrentFill runs writers and readers at once: the race detector
// checks that Fill takes what the writers publish safely, and every
// figure a reader sees is one the view allows.
func TestConcurrentFill(t *testing.T) {
	var tr Tracker
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				at := t0.Add(time.Duration(i) * time.Millisecond)
				switch (w + i) % 4 {
				case 0, 1:
					tr.Answered(at, time.Duration(i%7)*time.Millisecond, i%3 == 0)
				case 2:
					tr.Abandoned(at, time.Second)
				case 3:
					tr.Exited(at)
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for i := range 500 {
				var v engine.ConsumerStateView
				tr.Fill(&v, t0.Add(time.Duration(i)*time.Millisecond))
				if err := v.CheckObserved(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSubMillisecondSamplesAge: samples closer than a millisecond age the
// figures as fast as sparse ones do; the time between them is counted once
// it adds up to whole milliseconds, not dropped.
func TestSubMillisecondSamplesAge(t *testing.T) {
	var tr Tracker
	tr.Answered(t0, time.Second, false)
	at := t0
	for range 10000 { // a second of answers taking no time, 0.1 ms apart
		at = at.Add(100 * time.Microsecond)
		tr.Answered(at, 0, false)
	}
	var v engine.ConsumerStateView
	tr.Fill(&v, at)
	if want := math.Exp2(-float64(time.Second) / float64(engine.ObservedHalfLife)); !near(v.LatencyPeakEWMA, want) {
		t.Errorf("peak after a second of fast answers %v, want %v", v.LatencyPeakEWMA, want)
	}
}
