package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/node"
)

// BenchmarkNoisyNeighbour measures a healthy channel B offered 1,000
// dispatches a second while another channel A of the same node is offered
// as many: with A healthy, and with A's script looping into its 20 ms
// deadline on every call. Each iteration is a 2 s window; b-done/s is B's
// dispatches completed within the window, a second; b-p99-ms B's p99
// latency (of every dispatch offered, however late it ended); b-failed B's
// failed dispatches (its own script timing out, starved of CPU).
//
//	go test ./node -run '^$' -bench NoisyNeighbour -benchtime 3x
func BenchmarkNoisyNeighbour(b *testing.B) {
	const healthy, loop = `function route(r, c) return dispatch.least_loaded(c) end`, `function route(r, c) while true do end end`
	const rate, window = 1000, 2 * time.Second
	for _, tc := range []struct {
		name string
		a    string
	}{
		{"a=healthy", healthy},
		{"a=looping", loop},
	} {
		b.Run(tc.name, func(b *testing.B) {
			yaml := fmt.Sprintf(`version: 1
defaults: {script_timeout: 20ms}
channels:
  - namespace: prod
    task_queue: a
    routing: {lang: lua, source: %q}
    workers: [{id: a1, max_in_flight: 1000}, {id: a2, max_in_flight: 1000}]
  - namespace: prod
    task_queue: b
    routing: {lang: lua, source: %q}
    workers: [{id: b1, max_in_flight: 1000}, {id: b2, max_in_flight: 1000}]
`, tc.a, healthy)
			cfg, err := config.Parse("neighbour.yaml", []byte(yaml), config.Options{})
			if err != nil {
				b.Fatal(err)
			}
			n, err := node.New(cfg, node.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close(context.Background())
			var mu sync.Mutex
			var lat []time.Duration
			var done, failed atomic.Int64
			var windowEnd time.Time
			// B's dispatches are measured; A's only load the node.
			measure := func(i int) {
				start := time.Now()
				_, err := n.Dispatch(context.Background(), "prod", request("b", fmt.Sprintf("b-%d", i)))
				if err != nil {
					failed.Add(1)
					return
				}
				if time.Now().Before(windowEnd) {
					done.Add(1)
				}
				mu.Lock()
				lat = append(lat, time.Since(start))
				mu.Unlock()
			}
			load := func(i int) { n.Dispatch(context.Background(), "prod", request("a", fmt.Sprintf("a-%d", i))) }
			var elapsed time.Duration
			for b.Loop() {
				start := time.Now()
				windowEnd = start.Add(window)
				ctx, stop := context.WithDeadline(context.Background(), windowEnd)
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); offerLoad(ctx, &wg, rate, load) }()
				go func() { defer wg.Done(); offerLoad(ctx, &wg, rate, measure) }()
				<-ctx.Done()
				elapsed += time.Since(start)
				wg.Wait()
				stop()
			}
			_, p99 := percentiles(lat)
			b.ReportMetric(float64(done.Load())/elapsed.Seconds(), "b-done/s")
			b.ReportMetric(float64(p99.Microseconds())/1000, "b-p99-ms")
			b.ReportMetric(float64(failed.Load()), "b-failed")
		})
	}
}

// offerLoad calls dispatch(0), dispatch(1), … at rate a second until ctx
// ends, each in a goroutine of its own added to wg, as a server takes
// requests. It ticks every millisecond and starts as many as are due by
// then: a timer finer than that is not kept on every machine.
func offerLoad(ctx context.Context, wg *sync.WaitGroup, rate int, dispatch func(i int)) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for i := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for due := int(time.Since(start) * time.Duration(rate) / time.Second); i < due; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dispatch(i)
			}()
		}
	}
}
