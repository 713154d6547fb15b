package engine_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

// nopRecorder records nothing but makes the dispatcher build every operation.
type nopRecorder struct{}

func (nopRecorder) ReplayOutcome(context.Context, engine.ChannelName, engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return engine.RecordedOutcome{}, false, nil
}
func (nopRecorder) Record(context.Context, engine.Operation) error { return nil }

func benchDispatcher(b *testing.B, rec engine.Recorder, workers int) *engine.Dispatcher {
	b.Helper()
	return benchDispatcherWith(b, rec, workers, false)
}

// benchDispatcherWith is benchDispatcher; with backlog the dispatcher has
// the pool's capacity signal, as a node's does, so that an activity no
// worker can take waits in the backlog rather than failing.
func benchDispatcherWith(b *testing.B, rec engine.Recorder, workers int, backlog bool) *engine.Dispatcher {
	b.Helper()
	ch, err := engine.DispatchChannel(testNS, testQueue)
	if err != nil {
		b.Fatal(err)
	}
	pool := local.NewPool()
	b.Cleanup(func() { _ = pool.Close(context.Background()) })
	for i := range workers {
		if _, err := pool.Start(ch, local.WorkerConfig{ID: fmt.Sprintf("w%d", i+1), MaxInFlight: 4, Handler: echo}); err != nil {
			b.Fatal(err)
		}
	}
	opts := engine.Options{
		Pool: pool, Router: router.NewNative("least-loaded", router.LeastLoaded), Conversations: pool,
		Recorder: rec, IDs: &engine.SequenceIDs{Prefix: "c"},
	}
	if backlog {
		opts.Capacity = pool
	}
	d, err := engine.NewDispatcher(opts)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkDispatch measures the lifecycle overhead: workers that answer at
// once, the native least-loaded router, and a recorder that keeps nothing.
func BenchmarkDispatch(b *testing.B) {
	req := request("wf-1")
	for _, tc := range []struct {
		name string
		rec  engine.Recorder
	}{{"nop-recorder", nopRecorder{}}, {"no-recorder", nil}} {
		b.Run("sequential/"+tc.name, func(b *testing.B) {
			d := benchDispatcher(b, tc.rec, 4)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Dispatch(ctx, testNS, req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("parallel/"+tc.name, func(b *testing.B) {
			d := benchDispatcher(b, tc.rec, 4)
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := d.Dispatch(ctx, testNS, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	// As a node dispatches: the capacity signal wired, so a dispatch looks
	// at its channel's backlog first (empty here: the workers are never
	// all full).
	b.Run("sequential/with-backlog", func(b *testing.B) {
		d := benchDispatcherWith(b, nopRecorder{}, 4, true)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.Dispatch(ctx, testNS, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sequential/with-timeouts", func(b *testing.B) {
		d := benchDispatcher(b, nopRecorder{}, 4)
		ctx := context.Background()
		req := req
		req.StartToClose, req.ScheduleToClose = time.Minute, time.Hour
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.Dispatch(ctx, testNS, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// inline is a pool and a conversation that answer at once on the caller's
// goroutine, so that BenchmarkDispatch/engine-only measures the engine alone.
type inline struct{ workers []engine.Worker }

func (p *inline) Workers(context.Context, engine.ChannelName, engine.ActivityRequest) ([]engine.Worker, error) {
	return p.workers, nil
}
func (p *inline) Open(context.Context, string, engine.ChannelName, string) (engine.Conversation, error) {
	return inlineConversation{}, nil
}

type inlineConversation struct{}

func (inlineConversation) Link(context.Context, engine.Worker) error          { return nil }
func (inlineConversation) Send(context.Context, engine.DispatchRequest) error { return nil }
func (inlineConversation) Close() error                                       { return nil }
func (inlineConversation) Receive(context.Context) (engine.Event, error) {
	return engine.Event{Kind: engine.EventResponse, Result: engine.Completed(engine.Payload{})}, nil
}

// BenchmarkDispatchEngineOnly measures the dispatcher's own cost: a pool and
// conversation that answer inline, so no goroutine hand-off is counted.
func BenchmarkDispatchEngineOnly(b *testing.B) {
	var ws []engine.Worker
	for i := range 4 {
		id := fmt.Sprintf("w%d", i+1)
		ws = append(ws, engine.Worker{State: engine.ConsumerStateView{ID: id, MaxInFlight: 4}})
	}
	p := &inline{workers: ws}
	for _, tc := range []struct {
		name string
		rec  engine.Recorder
	}{{"nop-recorder", nopRecorder{}}, {"no-recorder", nil}} {
		b.Run(tc.name, func(b *testing.B) {
			d, err := engine.NewDispatcher(engine.Options{
				Pool: p, Router: router.NewNative("least-loaded", router.LeastLoaded), Conversations: p,
				Recorder: tc.rec, IDs: &engine.SequenceIDs{Prefix: "c"},
			})
			if err != nil {
				b.Fatal(err)
			}
			req := request("wf-1")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Dispatch(ctx, testNS, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReroute measures the time from a linked worker's exit to the
// request reaching the next worker's handler, and reports its median and
// 99th percentile.
func BenchmarkReroute(b *testing.B) {
	ch, err := engine.DispatchChannel(testNS, testQueue)
	if err != nil {
		b.Fatal(err)
	}
	pool := local.NewPool()
	b.Cleanup(func() { _ = pool.Close(context.Background()) })
	started := make(chan struct{}, 1)
	hangUntilExit := func(ctx context.Context, _ engine.ActivityRequest) engine.ActivityResult {
		started <- struct{}{}
		<-ctx.Done()
		return engine.Failed("unreachable")
	}
	arrived := make(chan time.Time, 1)
	startFirst := func() *local.Worker {
		w, err := pool.Start(ch, local.WorkerConfig{ID: "first", Handler: hangUntilExit})
		if err != nil {
			b.Fatal(err)
		}
		return w
	}
	first := startFirst()
	if _, err := pool.Start(ch, local.WorkerConfig{ID: "second", Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		arrived <- time.Now()
		return engine.Completed(req.Input)
	}}); err != nil {
		b.Fatal(err)
	}
	d, err := engine.NewDispatcher(engine.Options{Pool: pool, Router: router.NewNative("least-loaded", router.LeastLoaded), Conversations: pool})
	if err != nil {
		b.Fatal(err)
	}
	req := request("wf-1")
	samples := make([]time.Duration, 0, b.N)
	done := make(chan error, 1)
	b.ReportAllocs()
	for b.Loop() {
		go func() {
			_, err := d.Dispatch(context.Background(), testNS, req)
			done <- err
		}()
		<-started
		t0 := time.Now()
		first.Stop("benchmark exit")
		samples = append(samples, (<-arrived).Sub(t0))
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		first = startFirst()
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns/reroute")
	b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds()), "p99-ns/reroute")
}
