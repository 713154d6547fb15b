package local_test

import (
	"context"
	"fmt"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

// stillClock is a clock that does not move, as a simulation's.
type stillClock struct{}

func (stillClock) Now() time.Time { return time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) }

// What a channel observed of its workers is in the views routers get: a
// simulation states each activity's latency and lets no time pass, so the
// figures are the same on every run.
func ExamplePool_observedFigures() {
	pool := local.NewPool(local.WithClock(stillClock{}), local.WithReportedLatency())
	defer pool.Close(context.Background())
	ch, _ := engine.DispatchChannel("prod", "render")
	for _, w := range []struct {
		id      string
		latency time.Duration
	}{{"slow", 20 * time.Millisecond}, {"fast", 2 * time.Millisecond}} {
		pool.Start(ch, local.WorkerConfig{ID: w.id, MaxInFlight: 4,
			Handler: func(ctx context.Context, req engine.ActivityRequest) engine.ActivityResult {
				local.ReportLatency(ctx, w.latency) // instead of the time it took
				if req.ActivityType == "fail" {
					return engine.Failed("no")
				}
				return engine.Completed(req.Input)
			}})
	}
	d, _ := engine.NewDispatcher(engine.Options{Pool: pool, Conversations: pool, Capacity: pool,
		Router: router.NewNative("round robin", roundRobin())})
	for i, typ := range []string{"render", "render", "fail", "render"} {
		d.Dispatch(context.Background(), "prod", engine.ActivityRequest{WorkflowID: fmt.Sprint("wf-", i), ActivityType: typ, TaskQueue: "render"})
	}
	ws, _ := pool.Workers(context.Background(), ch, engine.ActivityRequest{})
	for _, w := range ws {
		v := w.State
		fmt.Printf("%s latency_ewma=%.3fs latency_peak_ewma=%.3fs error_rate=%.2f exits=%d\n",
			v.ID, v.LatencyEWMA, v.LatencyPeakEWMA, v.ErrorRate, v.Exits)
	}
	// Output:
	// slow latency_ewma=0.020s latency_peak_ewma=0.020s error_rate=0.50 exits=0
	// fast latency_ewma=0.002s latency_peak_ewma=0.002s error_rate=0.00 exits=0
}

// roundRobin is a Go policy that takes the candidates in turn.
func roundRobin() router.Policy {
	n := 0
	return func(in engine.Selection) string {
		n++
		return in.Candidates[(n-1)%len(in.Candidates)].ID()
	}
}
