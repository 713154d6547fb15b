package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/node"
	"github.com/aion-dispatch/dispatch/router"
)

// BenchmarkNoisyNeighbour measures a healthy channel B while another
// channel A of the same node dispatches as hard: with A healthy, with A's
// script looping into its 20 ms deadline on every call and calls unbounded,
// and with A looping under the default bound on concurrent calls per
// channel. ns/op is per B dispatch (8 at a time); b-p99-ms is B's p99;
// b-failed/op the share of B's dispatches that failed (B's own script
// timing out, starved of CPU).
//
//	go test ./node -run '^$' -bench NoisyNeighbour -benchtime 3s
func BenchmarkNoisyNeighbour(b *testing.B) {
	const healthy, loop = `function route(r, c) return dispatch.least_loaded(c) end`, `function route(r, c) while true do end end`
	for _, tc := range []struct {
		name  string
		a     string
		bound int // router.Limits.MaxConcurrentCalls
	}{
		{"a=healthy", healthy, 0},
		{"a=looping/calls=unbounded", loop, -1},
		{"a=looping/calls=bounded", loop, 0},
	} {
		b.Run(tc.name, func(b *testing.B) {
			yaml := fmt.Sprintf(`version: 1
defaults: {script_timeout: 20ms}
channels:
  - namespace: prod
    task_queue: a
    routing: {lang: lua, source: %q}
    workers: [{id: a1, max_in_flight: 64}, {id: a2, max_in_flight: 64}]
  - namespace: prod
    task_queue: b
    routing: {lang: lua, source: %q}
    workers: [{id: b1, max_in_flight: 64}, {id: b2, max_in_flight: 64}]
`, tc.a, healthy)
			cfg, err := config.Parse("neighbour.yaml", []byte(yaml),
				config.Options{Compiler: router.NewCompiler(router.Limits{MaxConcurrentCalls: tc.bound})})
			if err != nil {
				b.Fatal(err)
			}
			n, err := node.New(cfg, node.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close(context.Background())
			ctx, stop := context.WithCancel(context.Background())
			var noise sync.WaitGroup
			for g := range 8 {
				noise.Add(1)
				go func() {
					defer noise.Done()
					for i := 0; ctx.Err() == nil; i++ {
						n.Dispatch(ctx, "prod", "a", request(fmt.Sprintf("a-%d-%d", g, i)))
					}
				}()
			}
			var next, failed atomic.Int64
			lat := make([][]time.Duration, 8)
			var wg sync.WaitGroup
			b.ResetTimer()
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						start := time.Now()
						if _, err := n.Dispatch(context.Background(), "prod", "b", request(fmt.Sprintf("b-%d", i))); err != nil {
							failed.Add(1) // B's own script timing out, starved of CPU
						}
						lat[g] = append(lat[g], time.Since(start))
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			stop()
			noise.Wait()
			all := slices.Concat(lat...)
			_, p99 := percentiles(all)
			b.ReportMetric(float64(p99.Microseconds())/1000, "b-p99-ms")
			b.ReportMetric(float64(failed.Load())/float64(b.N), "b-failed/op")
		})
	}
}
