package local_test

import (
	"context"
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
