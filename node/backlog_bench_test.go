package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/node"
)

// backlogConfig is a config of one channel, prod/work, routed by the
// least-loaded helper in Lua, with the given workers (YAML flow mappings).
func backlogConfig(tb testing.TB, workers ...string) *config.Config {
	tb.Helper()
	return scriptConfig(tb, "inline", "function route(r, c) return dispatch.least_loaded(c) end", workers...)
}

// burst starts a node on cfg, dispatches n activities at once (each from
// its own goroutine, as a server takes them), and returns how long they
// took from the first dispatch to the last answer, and how many each
// worker completed. Starting and closing the node are not counted.
func burst(tb testing.TB, cfg *config.Config, n int) (time.Duration, map[string]int) {
	tb.Helper()
	nd, err := node.New(cfg, node.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	defer nd.Close(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			req := engine.ActivityRequest{WorkflowID: fmt.Sprintf("wf-%d", i), ActivityType: "work", TaskQueue: "work"}
			if _, err := nd.Dispatch(context.Background(), "prod", req); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	done := map[string]int{}
	for _, w := range nd.Stats().Workers {
		done[w.Worker] += w.Completed
	}
	return took, done
}

// BenchmarkSlowAndFastWorker: n activities at once on a channel with one
// slow worker (50 ms an activity) and one fast one (1 ms), one slot each.
// An activity waits in the backlog for a free slot, so the slow worker
// takes one only when its slot is free and the fast one takes the rest as
// fast as it can. Then the fast worker alone (a channel of it only) is
// given as many activities as it took, and timed the same way: ratio is
// the first time over the second; the bar is 1.2. Reported per
// round: ms-total (slow and fast), ms-fast-alone, slow-took.
func BenchmarkSlowAndFastWorker(b *testing.B) {
	both := backlogConfig(b,
		"{id: slow, max_in_flight: 1, behavior: {latency: 50ms}}",
		"{id: fast, max_in_flight: 1, behavior: {latency: 1ms}}")
	fastOnly := backlogConfig(b, "{id: fast, max_in_flight: 1, behavior: {latency: 1ms}}")
	for _, n := range []int{100, 200, 500} {
		b.Run(fmt.Sprintf("activities=%d", n), func(b *testing.B) {
			var total, alone time.Duration
			var slowTook, rounds int
			for b.Loop() {
				t, done := burst(b, both, n)
				if done["slow"]+done["fast"] != n {
					b.Fatalf("completed %v, want %d in all", done, n)
				}
				ta, _ := burst(b, fastOnly, done["fast"])
				total, alone, slowTook, rounds = total+t, alone+ta, slowTook+done["slow"], rounds+1
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(rounds) }
			b.ReportMetric(ms(total), "ms-total")
			b.ReportMetric(ms(alone), "ms-fast-alone")
			b.ReportMetric(float64(total)/float64(alone), "ratio")
			b.ReportMetric(float64(slowTook)/float64(rounds), "slow-took")
		})
	}
}

// waits records, for each conversation, how long its first selection
// waited in the backlog (0 when it did not wait).
type waits struct {
	mu sync.Mutex
	ds []time.Duration
}

func (w *waits) ReplayOutcome(context.Context, engine.ChannelName, engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return engine.RecordedOutcome{}, false, nil
}

func (w *waits) Record(_ context.Context, op engine.Operation) error {
	if op.Kind == engine.OpWorkerSelected && op.Attempt == 1 {
		w.mu.Lock()
		w.ds = append(w.ds, op.Waited)
		w.mu.Unlock()
	}
	return nil
}

// BenchmarkSaturatedChannel keeps a channel of 4 workers × 2 slots busy,
// each activity 1 ms, with dispatchers that each dispatch again as soon as
// its last activity is answered: 8 of them, one per slot (at capacity,
// next to nothing waits), and 64 (saturated: 56 wait in the backlog at any
// time). It reports dispatches/s, and the wait in the backlog of every
// dispatch, p50 and p99, from the journal's waited (0 for one that did not
// wait); backlog-peak is the node's figure (activities between their
// activity_waiting and the worker_selected that ends the wait).
func BenchmarkSaturatedChannel(b *testing.B) {
	var workers []string
	for i := range 4 {
		workers = append(workers, fmt.Sprintf("{id: w%d, max_in_flight: 2, behavior: {latency: 1ms}}", i+1))
	}
	cfg := backlogConfig(b, workers...)
	for _, dispatchers := range []int{8, 64} {
		b.Run(fmt.Sprintf("dispatchers=%d", dispatchers), func(b *testing.B) {
			rec := &waits{}
			nd, err := node.New(cfg, node.Options{Logger: slog.New(slog.DiscardHandler), Recorder: rec})
			if err != nil {
				b.Fatal(err)
			}
			defer nd.Close(context.Background())
			b.SetParallelism(max(dispatchers/runtime.GOMAXPROCS(0), 1))
			req := engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "work", TaskQueue: "work"}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := nd.Dispatch(context.Background(), "prod", req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "dispatches/s")
			rec.mu.Lock()
			ds := slices.Clone(rec.ds)
			rec.mu.Unlock()
			slices.Sort(ds)
			at := func(q float64) float64 {
				return float64(ds[min(int(q*float64(len(ds))), len(ds)-1)].Microseconds()) / 1000
			}
			b.ReportMetric(at(0.50), "wait-p50-ms")
			b.ReportMetric(at(0.99), "wait-p99-ms")
			b.ReportMetric(float64(nd.Stats().Channels[0].BacklogPeak), "backlog-peak")
		})
	}
}
