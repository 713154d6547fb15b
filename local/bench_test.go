package local_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
)

// BenchmarkRoundTrip compares one conversation with an in-process worker
// (open, link, send, receive, close) with the floor under it: a bare request
// and reply between two goroutines over channels.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("channel-floor", func(b *testing.B) {
		reqs := make(chan chan int, 16)
		done := make(chan struct{})
		go func() {
			for {
				select {
				case r := <-reqs:
					r <- 1
				case <-done:
					return
				}
			}
		}()
		b.ReportAllocs()
		for b.Loop() {
			r := make(chan int, 1)
			reqs <- r
			<-r
		}
		close(done)
	})
	b.Run("conversation", func(b *testing.B) {
		ch, err := engine.DispatchChannel("prod", "email")
		if err != nil {
			b.Fatal(err)
		}
		p := local.NewPool()
		b.Cleanup(func() { _ = p.Close(context.Background()) })
		if _, err := p.Start(ch, local.WorkerConfig{ID: "w1", Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
			return engine.Completed(req.Input)
		}}); err != nil {
			b.Fatal(err)
		}
		ws, err := p.Workers(context.Background(), ch, engine.ActivityRequest{})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		msg := engine.DispatchRequest{ConversationID: "c1", Request: engine.ActivityRequest{WorkflowID: "wf-1"}}
		b.ReportAllocs()
		for b.Loop() {
			c, _ := p.Open(ctx, "wf-1", ch, "c1")
			if err := c.Link(ctx, ws[0]); err != nil {
				b.Fatal(err)
			}
			if err := c.Send(ctx, msg); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Receive(ctx); err != nil {
				b.Fatal(err)
			}
			if err := c.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWorkers takes the snapshot of one channel in a pool of 10,000
// channels: the read on every dispatch. With 4 workers the snapshot is
// built (one allocation); with none it is the lookup alone. The channels are
// added one at a time with AddChannel (so that these run on the pool as it
// was before AddChannels too), or, in the last case, together with one
// AddChannels, as node.Apply adds them.
func BenchmarkWorkers(b *testing.B) {
	oneAtATime := func(p *local.Pool, chs []engine.ChannelName) {
		for _, ch := range chs {
			p.AddChannel(ch)
		}
	}
	together := func(p *local.Pool, chs []engine.ChannelName) { p.AddChannels(chs...) }
	for _, workers := range []int{4, 0} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) { benchmarkWorkers(b, workers, oneAtATime) })
	}
	b.Run("workers=4,added-together", func(b *testing.B) { benchmarkWorkers(b, 4, together) })
}

func benchmarkWorkers(b *testing.B, workers int, add func(*local.Pool, []engine.ChannelName)) {
	p := local.NewPool()
	b.Cleanup(func() { _ = p.Close(context.Background()) })
	chs := make([]engine.ChannelName, 10_000)
	for i := range chs {
		ch, err := engine.DispatchChannel("prod", fmt.Sprintf("q%d", i))
		if err != nil {
			b.Fatal(err)
		}
		chs[i] = ch
	}
	add(p, chs)
	target := chs[5_000]
	for i := range workers {
		if _, err := p.Start(target, local.WorkerConfig{ID: fmt.Sprintf("w%d", i), Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
			return engine.Completed(req.Input)
		}}); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC() // the setup's garbage is not collected while the reads are timed
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if ws, err := p.Workers(ctx, target, engine.ActivityRequest{}); err != nil || len(ws) != workers {
			b.Fatalf("snapshot: %v, %v", ws, err)
		}
	}
}
