package main

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
	"github.com/aion-dispatch/dispatch/worker"
)

// benchRequest is the activity of the benchmarks: a small JSON echo.
var benchRequest = engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "echo", TaskQueue: "bench",
	Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"n":1}`)}}

// Round trips: four workers of 64 slots each, so that every concurrency
// measured finds a free slot.
const (
	benchWorkers = 4
	benchSlots   = 64
)

var benchConcurrency = []int{1, 64, 256}

// BenchmarkWorkerRoundTrip dispatches an echo activity end to end (open,
// route, link, send, receive, close) at concurrency 1, 64 and 256, side by
// side:
//
//   - local: in-process workers (package local), the floor;
//   - nats: workers of the Go worker library in this process, each on its
//     own connection to the embedded broker on loopback, through
//     package remote;
//   - process: `dispatch worker --serve` processes running a JSON-lines
//     echo program, through package remote.
//
// Reported: p50 and p99 of one dispatch, and dispatches/s.
func BenchmarkWorkerRoundTrip(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		p := local.NewPool()
		b.Cleanup(func() { _ = p.Close(context.Background()) })
		ch, _ := engine.DispatchChannel("prod", "bench")
		for i := range benchWorkers {
			if _, err := p.Start(ch, local.WorkerConfig{ID: "w" + strconv.Itoa(i), MaxInFlight: benchSlots,
				Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
					return engine.Completed(req.Input)
				}}); err != nil {
				b.Fatal(err)
			}
		}
		benchRoundTrips(b, newBenchDispatcher(b, p, p, p, nil))
	})
	b.Run("nats", func(b *testing.B) {
		r := newRig(b, "prod", "bench", rigOpts{})
		ids := make([]string, benchWorkers)
		for i := range ids {
			ids[i] = "w" + strconv.Itoa(i)
			r.runWorker(b, worker.Options{ID: ids[i], Channels: []string{"prod/bench"}, MaxInFlight: benchSlots})
		}
		r.waitRegistered(b, ids...)
		benchRoundTrips(b, newBenchDispatcher(b, r.tr, r.tr, r.tr, nil))
	})
	b.Run("process", func(b *testing.B) {
		r := newRig(b, "prod", "bench", rigOpts{})
		ids := make([]string, benchWorkers)
		for i := range ids {
			ids[i] = "w" + strconv.Itoa(i)
			r.startWorker(b, ids[i], "--max-in-flight", strconv.Itoa(benchSlots), "--serve", "--", testProgramName, "serve")
		}
		r.waitRegistered(b, ids...)
		benchRoundTrips(b, newBenchDispatcher(b, r.tr, r.tr, r.tr, nil))
	})
}

func newBenchDispatcher(b *testing.B, pool engine.WorkerPool, convs engine.ConversationFactory, capacity engine.CapacitySignal, rt engine.Router) *engine.Dispatcher {
	b.Helper()
	if rt == nil {
		rt = router.NewNative("least-loaded", router.LeastLoaded)
	}
	d, err := engine.NewDispatcher(engine.Options{Pool: pool, Conversations: convs, Capacity: capacity, Router: rt})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// benchRoundTrips runs b.N dispatches at each concurrency, a sub-benchmark
// each.
func benchRoundTrips(b *testing.B, d *engine.Dispatcher) {
	for _, c := range benchConcurrency {
		b.Run("c="+strconv.Itoa(c), func(b *testing.B) {
			lat := make([][]time.Duration, c)
			var next atomic.Int64
			var failed atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for g := range c {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						_, err := d.Dispatch(context.Background(), "prod", benchRequest)
						lat[g] = append(lat[g], time.Since(t0))
						if err != nil {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d dispatches failed", n)
			}
			all := slices.Concat(lat...)
			slices.Sort(all)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "dispatches/s")
			b.ReportMetric(quantileMicros(all, 0.50), "p50-µs")
			b.ReportMetric(quantileMicros(all, 0.99), "p99-µs")
		})
	}
}

// quantileMicros is the q-quantile of sorted, in microseconds.
func quantileMicros(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[min(int(q*float64(len(sorted))), len(sorted)-1)].Nanoseconds()) / 1e3
}

// runWorker runs a worker of the Go library in this process, on its own
// connection, until the benchmark ends.
func (r *rig) runWorker(tb testing.TB, opts worker.Options) {
	tb.Helper()
	nc, err := r.b.Connect()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(ctx, nc, opts, func(_ context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
			return engine.Completed(req.Input), nil
		})
	}()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(guard):
			tb.Errorf("worker %s did not stop", opts.ID)
		}
		nc.Close()
	})
}

// sendClock is the recorder of the kill benchmark: it stamps each
// worker_exited and message_sent as the dispatcher records it, and says
// to which worker each message went.
type sendClock struct {
	sent chan sendStamp // every message_sent
	mu   sync.Mutex
	exit time.Time // the last worker_exited
}

type sendStamp struct {
	worker string
	at     time.Time
}

func (s *sendClock) ReplayOutcome(context.Context, engine.ChannelName, engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return engine.RecordedOutcome{}, false, nil
}

func (s *sendClock) Record(_ context.Context, op engine.Operation) error {
	now := time.Now()
	switch op.Kind {
	case engine.OpMessageSent:
		s.sent <- sendStamp{op.WorkerID, now}
	case engine.OpWorkerExited:
		s.mu.Lock()
		s.exit = now
		s.mu.Unlock()
	}
	return nil
}

func (s *sendClock) exitedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exit
}

// preferVictim routes to a victim ("v-…") while there is one, else to the
// first candidate.
func preferVictim(in engine.Selection) string {
	for _, c := range in.Candidates {
		if strings.HasPrefix(c.ID(), "v-") {
			return c.ID()
		}
	}
	return in.Candidates[0].ID()
}

// BenchmarkKill9Resend measures, per iteration, a worker holding an
// activity that dies, until the activity is sent to the next worker (the
// dispatcher's message_sent to it), side by side:
//
//   - local: an in-process worker stopped (local.Worker.Stop), the
//     in-process floor;
//   - process: a `dispatch worker --serve` process killed with SIGKILL,
//     seen through the broker's disconnect advisory; the next worker is
//     another such process.
//
// Reported: p50 and p99 of kill → next send, and their two parts: kill →
// worker_exited recorded (how soon the exit is seen) and worker_exited →
// next send (the engine's re-route). Each iteration starts a new victim,
// so ns/op is mostly process start-up.
func BenchmarkKill9Resend(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		p := local.NewPool()
		b.Cleanup(func() { _ = p.Close(context.Background()) })
		ch, _ := engine.DispatchChannel("prod", "bench")
		if _, err := p.Start(ch, local.WorkerConfig{ID: "next", Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
			return engine.Completed(req.Input)
		}}); err != nil {
			b.Fatal(err)
		}
		clock := &sendClock{sent: make(chan sendStamp, 4)}
		d, err := engine.NewDispatcher(engine.Options{Pool: p, Conversations: p, Capacity: p,
			Router: router.NewNative("prefer-victim", preferVictim), Recorder: clock})
		if err != nil {
			b.Fatal(err)
		}
		hold := func(ctx context.Context, _ engine.ActivityRequest) engine.ActivityResult {
			<-ctx.Done()
			return engine.Failed("unreachable")
		}
		var k killSamples
		for i := 0; b.Loop(); i++ {
			v, err := p.Start(ch, local.WorkerConfig{ID: "v-" + strconv.Itoa(i), Handler: hold})
			if err != nil {
				b.Fatal(err)
			}
			k.measure(b, d, clock, func() { v.Stop("killed") })
			p.Remove(ch, v.ID())
		}
		k.report(b)
	})
	b.Run("process", func(b *testing.B) {
		r := newRig(b, "prod", "bench", rigOpts{})
		r.startWorker(b, "next", "--serve", "--", testProgramName, "serve")
		r.waitRegistered(b, "next")
		clock := &sendClock{sent: make(chan sendStamp, 4)}
		d, err := engine.NewDispatcher(engine.Options{Pool: r.tr, Conversations: r.tr, Capacity: r.tr,
			Router: router.NewNative("prefer-victim", preferVictim), Recorder: clock})
		if err != nil {
			b.Fatal(err)
		}
		var k killSamples
		for i := 0; b.Loop(); i++ {
			id := "v-" + strconv.Itoa(i)
			b.StopTimer()
			v := r.startWorker(b, id, "--serve", "--", testProgramName, "serve", "0") // holds all
			r.waitRegistered(b, id)
			b.StartTimer()
			k.measure(b, d, clock, func() { _ = v.cmd.Process.Signal(syscall.SIGKILL) })
			v.wait(b)
		}
		k.report(b)
	})
}

// killSamples are the kill benchmark's measures.
type killSamples struct{ toSend, toExit, exitToSend []time.Duration }

// measure dispatches one activity, waits until it is sent to a victim,
// kills it, and waits until the activity is sent to another worker and
// its dispatch completes.
func (k *killSamples) measure(b *testing.B, d *engine.Dispatcher, clock *sendClock, kill func()) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := d.Dispatch(ctx, "prod", benchRequest)
		done <- err
	}()
	first := <-clock.sent // to the victim; the guard's ctx bounds it
	if !strings.HasPrefix(first.worker, "v-") {
		b.Fatalf("sent first to %s", first.worker)
	}
	t0 := time.Now()
	kill()
	var next sendStamp
	select {
	case next = <-clock.sent:
	case <-ctx.Done():
		b.Fatal("the activity was never sent again")
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	exit := clock.exitedAt()
	k.toSend = append(k.toSend, next.at.Sub(t0))
	k.toExit = append(k.toExit, exit.Sub(t0))
	k.exitToSend = append(k.exitToSend, next.at.Sub(exit))
}

func (k *killSamples) report(b *testing.B) {
	for _, s := range []struct {
		name string
		d    []time.Duration
	}{{"kill-to-send", k.toSend}, {"kill-to-exit", k.toExit}, {"exit-to-send", k.exitToSend}} {
		slices.Sort(s.d)
		b.ReportMetric(quantileMicros(s.d, 0.50), "p50-µs-"+s.name)
		b.ReportMetric(quantileMicros(s.d, 0.99), "p99-µs-"+s.name)
	}
}
