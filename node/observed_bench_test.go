package node_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/node"
)

// scriptConfig is a config of one channel, prod/work, routed by the
// shipped script at path (relative to the repository; with lang "inline",
// path is a Lua route's source instead), with the given workers (YAML flow
// mappings).
func scriptConfig(tb testing.TB, lang, path string, workers ...string) *config.Config {
	tb.Helper()
	routing := fmt.Sprintf("{lang: lua, source: %q}", path)
	if lang != "inline" {
		abs, err := filepath.Abs(filepath.Join("..", path))
		if err != nil {
			tb.Fatal(err)
		}
		routing = fmt.Sprintf("{%s: %q}", lang, abs)
	}
	src := "version: 1\nchannels:\n  - namespace: prod\n    task_queue: work\n" +
		"    routing: " + routing + "\n    workers:\n"
	for _, w := range workers {
		src += "      - " + w + "\n"
	}
	cfg, err := config.Parse("conf/dispatch.yaml", []byte(src), config.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// fleetRun is what one run of activities through a node came to.
type fleetRun struct {
	took      time.Duration   // first dispatch to last answer
	latencies []time.Duration // of each dispatch, as its caller saw it
	sent      map[string]int  // activities each worker answered
	failed    int             // activities that ended failed
}

// runFleet starts a node on cfg and dispatches n activities from
// concurrency goroutines, each dispatching its next as soon as its last
// is answered. Starting and closing the node are not counted.
func runFleet(tb testing.TB, cfg *config.Config, n, concurrency int) fleetRun {
	tb.Helper()
	nd, err := node.New(cfg, node.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	defer nd.Close(context.Background())
	var next, failed atomic.Int64
	lat := make([][]time.Duration, concurrency)
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	start := time.Now()
	for g := range concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				req := engine.ActivityRequest{WorkflowID: fmt.Sprintf("wf-%d", i), ActivityType: "work", TaskQueue: "work"}
				t0 := time.Now()
				_, err := nd.Dispatch(context.Background(), "prod", req)
				lat[g] = append(lat[g], time.Since(t0))
				switch {
				case errors.Is(err, engine.ErrActivityFailed):
					failed.Add(1)
				case err != nil:
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	r := fleetRun{took: time.Since(start), sent: map[string]int{}, failed: int(failed.Load())}
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	for _, l := range lat {
		r.latencies = append(r.latencies, l...)
	}
	for _, w := range nd.Stats().Workers {
		r.sent[w.Worker] += w.Completed + w.Failed
	}
	return r
}

// percentile returns the p-th percentile (0..100) of ds, which it sorts.
func percentile(ds []time.Duration, p float64) time.Duration {
	slices.Sort(ds)
	if len(ds) == 0 {
		return 0
	}
	return ds[min(len(ds)-1, int(float64(len(ds))*p/100))]
}

// BenchmarkSlowAndFastByLatency (issue 18): a slow worker (20 ms an
// activity) and a fast one (2 ms), 32 slots each so that routing alone
// decides, 2,000 activities from 32 callers; the same run routed by
// least_loaded.lua, by p2c_ewma.lua and by least_latency alone (which
// looks at no load). Reported per run: ms-total,
// p50-ms and p99-ms of the callers' latencies, and slow-share (the slow
// worker's share of the activities).
func BenchmarkSlowAndFastByLatency(b *testing.B) {
	workers := []string{
		"{id: slow, max_in_flight: 32, behavior: {latency: 20ms}}",
		"{id: fast, max_in_flight: 32, behavior: {latency: 2ms}}",
	}
	for _, s := range []struct{ name, lang, path string }{
		{"least_loaded.lua", "lua", "scripts/least_loaded.lua"},
		{"p2c_ewma.lua", "lua", "scripts/p2c_ewma.lua"},
		{"least_latency", "inline", "function route(r, c) return dispatch.least_latency(c) end"},
	} {
		b.Run(s.name, func(b *testing.B) {
			cfg := scriptConfig(b, s.lang, s.path, workers...)
			var total, p50, p99 time.Duration
			var slow, all, runs int
			for b.Loop() {
				r := runFleet(b, cfg, 2000, 32)
				total += r.took
				p50 += percentile(r.latencies, 50)
				p99 += percentile(r.latencies, 99)
				slow, all, runs = slow+r.sent["slow"], all+r.sent["slow"]+r.sent["fast"], runs+1
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(runs) }
			b.ReportMetric(ms(total), "ms-total")
			b.ReportMetric(ms(p50), "p50-ms")
			b.ReportMetric(ms(p99), "p99-ms")
			b.ReportMetric(float64(slow)/float64(all), "slow-share")
		})
	}
}

// BenchmarkFailingWorker (issue 18): four workers of 1 ms an activity, 8
// slots each, one of which fails half of what it gets; 2,000 activities
// from 32 callers, routed by least_loaded.lua and by outlier_eject.expr.
// Reported per run: bad-share (the failing worker's share of the
// activities) and failed (activities that ended failed, of 2,000).
func BenchmarkFailingWorker(b *testing.B) {
	workers := []string{
		"{id: bad, max_in_flight: 8, behavior: {latency: 1ms, fail_rate: 0.5}}",
		"{id: ok1, max_in_flight: 8, behavior: {latency: 1ms}}",
		"{id: ok2, max_in_flight: 8, behavior: {latency: 1ms}}",
		"{id: ok3, max_in_flight: 8, behavior: {latency: 1ms}}",
	}
	for _, s := range []struct{ name, lang, path string }{
		{"least_loaded.lua", "lua", "scripts/least_loaded.lua"},
		{"outlier_eject.expr", "expr", "scripts/outlier_eject.expr"},
	} {
		b.Run(s.name, func(b *testing.B) {
			cfg := scriptConfig(b, s.lang, s.path, workers...)
			var bad, all, failed, runs int
			for b.Loop() {
				r := runFleet(b, cfg, 2000, 32)
				for id, n := range r.sent {
					all += n
					if id == "bad" {
						bad += n
					}
				}
				failed, runs = failed+r.failed, runs+1
			}
			b.ReportMetric(float64(bad)/float64(all), "bad-share")
			b.ReportMetric(float64(failed)/float64(runs), "failed")
		})
	}
}
