package local_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
)

var _ engine.CapacitySignal = (*local.Pool)(nil)

// Many conversations race to link one worker: exactly its capacity of them
// get a slot, the others fail with ErrWorkerFull, and once all close the
// worker is idle again.
func TestExactlyMaxInFlightLinksSucceed(t *testing.T) {
	const slots, racers = 8, 64
	p := newPool(t)
	ch := channel(t)
	g := newGate()
	w, err := p.Start(ch, local.WorkerConfig{ID: "w1", MaxInFlight: slots, Handler: g.handler})
	if err != nil {
		t.Fatal(err)
	}
	target := snapshot(t, p, ch)[0]
	for round := range 20 {
		convs := make([]engine.Conversation, racers)
		errs := make([]error, racers)
		for i := range convs {
			convs[i], _ = p.Open(context.Background(), "wf", ch, fmt.Sprint("c", i))
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range convs {
			wg.Go(func() {
				<-start
				errs[i] = convs[i].Link(context.Background(), target)
			})
		}
		close(start)
		wg.Wait()
		linked := 0
		for i, err := range errs {
			switch {
			case err == nil:
				linked++
			case !errors.Is(err, engine.ErrWorkerFull):
				t.Fatalf("round %d: link %d: %v, want nil or ErrWorkerFull", round, i, err)
			}
		}
		if linked != slots || w.State().InFlight != slots {
			t.Fatalf("round %d: %d links succeeded, %d in flight; want %d of each", round, linked, w.State().InFlight, slots)
		}
		for _, c := range convs {
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if n := w.State().InFlight; n != 0 {
			t.Fatalf("round %d: %d in flight after every conversation closed", round, n)
		}
	}
}

// Each way an attempt ends frees its slot, once: a second way that follows
// (Close after the answer, Close after the exit) frees nothing more.
func TestEveryPathFreesTheSlotOnce(t *testing.T) {
	ctx := context.Background()
	start := func(t *testing.T, p *local.Pool, ch engine.ChannelName, id string, h local.Handler) (*local.Worker, engine.Worker) {
		t.Helper()
		w, err := p.Start(ch, local.WorkerConfig{ID: id, MaxInFlight: 2, Handler: h})
		if err != nil {
			t.Fatal(err)
		}
		for _, sw := range snapshot(t, p, ch) {
			if sw.ID() == id {
				return w, sw
			}
		}
		t.Fatalf("%s not in the snapshot", id)
		return nil, engine.Worker{}
	}
	inFlight := func(t *testing.T, w *local.Worker, want int, when string) {
		t.Helper()
		if got := w.State(); got.InFlight != want || (want == 0 && got.BufferDepth != 0) {
			t.Fatalf("%s: %d in flight, %d not started; want %d in flight", when, got.InFlight, got.BufferDepth, want)
		}
	}
	echo := func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(engine.Payload{Data: []byte(req.WorkflowID)})
	}

	t.Run("answer", func(t *testing.T) {
		p, ch := newPool(t), channel(t)
		w, sw := start(t, p, ch, "w1", echo)
		c := open(t, p, ch, sw, "a")
		if ev, err := c.Receive(ctx); err != nil || ev.Kind != engine.EventResponse {
			t.Fatalf("receive = %+v, %v", ev, err)
		}
		inFlight(t, w, 0, "after the answer")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		inFlight(t, w, 0, "after the answer and Close")
	})
	t.Run("exit while running", func(t *testing.T) {
		p, ch := newPool(t), channel(t)
		g := newGate()
		w, sw := start(t, p, ch, "w1", g.handler)
		c := open(t, p, ch, sw, "a")
		<-g.started
		w.Stop("crashed")
		if ev, err := c.Receive(ctx); err != nil || ev.Kind != engine.EventWorkerExited {
			t.Fatalf("receive = %+v, %v", ev, err)
		}
		if err := w.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		inFlight(t, w, 0, "after the exit")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		inFlight(t, w, 0, "after the exit and Close")
	})
	t.Run("exit unobserved", func(t *testing.T) {
		p, ch := newPool(t), channel(t)
		g := newGate()
		w, sw := start(t, p, ch, "w1", g.handler)
		c := open(t, p, ch, sw, "a")
		<-g.started
		w.Stop("crashed")
		if err := w.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		inFlight(t, w, 0, "after the exit, before the conversation saw it")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		inFlight(t, w, 0, "after the exit and Close")
	})
	t.Run("panic", func(t *testing.T) {
		p, ch := newPool(t), channel(t)
		w, sw := start(t, p, ch, "w1", func(context.Context, engine.ActivityRequest) engine.ActivityResult { panic("boom") })
		c := open(t, p, ch, sw, "a")
		if ev, err := c.Receive(ctx); err != nil || ev.Kind != engine.EventWorkerExited {
			t.Fatalf("receive = %+v, %v", ev, err)
		}
		if err := w.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		inFlight(t, w, 0, "after the panic")
		_ = c.Close()
		inFlight(t, w, 0, "after the panic and Close")
	})
	t.Run("close before send", func(t *testing.T) {
		p, ch := newPool(t), channel(t)
		w, sw := start(t, p, ch, "w1", echo)
		c := link(t, p, ch, sw, "a")
		inFlight(t, w, 1, "linked")
		if n := w.State().BufferDepth; n != 1 {
			t.Fatalf("linked: %d not started, want 1", n)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		inFlight(t, w, 0, "after Close")
	})
	t.Run("close while running", func(t *testing.T) {
		p, ch := newPool(t), channel(t)
		g := newGate()
		w, sw := start(t, p, ch, "w1", g.handler)
		c := open(t, p, ch, sw, "a")
		<-g.started
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		inFlight(t, w, 0, "after Close, the handler cancelled")
		w.Stop("done")
		if err := w.Wait(ctx); err != nil { // the cancelled handler has returned
			t.Fatal(err)
		}
		inFlight(t, w, 0, "after the cancelled handler returned")
	})
	t.Run("link to an exited worker", func(t *testing.T) {
		p, ch := newPool(t), channel(t)
		w, sw := start(t, p, ch, "w1", echo)
		w.Stop("gone")
		c := link(t, p, ch, sw, "a")
		inFlight(t, w, 0, "linked to an exited worker")
		send(t, c, "a")
		if ev, err := c.Receive(ctx); err != nil || ev.Kind != engine.EventWorkerExited {
			t.Fatalf("receive = %+v, %v", ev, err)
		}
		_ = c.Close()
		inFlight(t, w, 0, "after Close")
	})
	t.Run("re-link", func(t *testing.T) {
		p, ch := newPool(t), channel(t)
		g := newGate()
		w1, sw1 := start(t, p, ch, "w1", g.handler)
		w2, sw2 := start(t, p, ch, "w2", g.handler)
		c := open(t, p, ch, sw1, "a")
		<-g.started
		if err := c.Link(ctx, sw2); err != nil { // the first attempt ends: its handler is cancelled
			t.Fatal(err)
		}
		inFlight(t, w1, 0, "w1 after the conversation linked w2")
		inFlight(t, w2, 1, "w2 after the conversation linked it")
		send(t, c, "a")
		<-g.started
		close(g.release)
		if ev, err := c.Receive(ctx); err != nil || ev.Kind != engine.EventResponse || ev.WorkerID != "w2" {
			t.Fatalf("receive = %+v, %v; want w2's answer", ev, err)
		}
		_ = c.Close()
		inFlight(t, w1, 0, "w1 at the end")
		inFlight(t, w2, 0, "w2 at the end")
	})
	t.Run("re-link after an exit", func(t *testing.T) {
		p, ch := newPool(t), channel(t)
		g := newGate()
		w1, sw1 := start(t, p, ch, "w1", g.handler)
		w2, sw2 := start(t, p, ch, "w2", echo)
		c := open(t, p, ch, sw1, "a")
		<-g.started
		w1.Stop("crashed")
		if ev, err := c.Receive(ctx); err != nil || ev.Kind != engine.EventWorkerExited {
			t.Fatalf("receive = %+v, %v", ev, err)
		}
		if err := c.Link(ctx, sw2); err != nil {
			t.Fatal(err)
		}
		send(t, c, "a")
		if ev, err := c.Receive(ctx); err != nil || ev.WorkerID != "w2" {
			t.Fatalf("receive = %+v, %v; want w2's answer", ev, err)
		}
		_ = c.Close()
		if err := w1.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		inFlight(t, w1, 0, "w1 at the end")
		inFlight(t, w2, 0, "w2 at the end")
	})
}

// Conversations on many goroutines use one worker at once, each waiting for
// a slot as the engine's backlog does (ask for the signal, then link, and
// wait for the signal if the worker is full), and ending its attempt in
// every way: the answer, Close while the handler runs, Close while the
// activity waits in the mailbox, Close before sending. A change the
// waiters miss hangs them (the guard fails the test); a slot freed twice or
// never shows in the counts, which a sampler also checks all along.
func TestSlotsUnderConcurrentUse(t *testing.T) {
	const slots, users, rounds = 3, 12, 150
	p := newPool(t)
	ch := channel(t)
	w, err := p.Start(ch, local.WorkerConfig{ID: "w1", MaxInFlight: slots, Handler: func(ctx context.Context, req engine.ActivityRequest) engine.ActivityResult {
		if req.WorkflowID == "hang" {
			<-ctx.Done() // runs until its conversation closes
			return engine.Failed("cancelled")
		}
		return engine.Completed(req.Input)
	}})
	if err != nil {
		t.Fatal(err)
	}
	target := snapshot(t, p, ch)[0]
	stop := make(chan struct{})
	sampled := make(chan error, 1)
	go func() {
		var bad error
		for {
			select {
			case <-stop:
				sampled <- bad
				return
			default:
			}
			if s := w.State(); bad == nil && (s.InFlight < 0 || s.InFlight > slots || s.BufferDepth < 0) {
				bad = fmt.Errorf("state %+v out of bounds", s)
			}
		}
	}()
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			ctx := context.Background()
			for r := range rounds {
				c, _ := p.Open(ctx, "wf", ch, fmt.Sprint(u, "-", r))
				for {
					sig := p.CapacityChanged(ch)
					err := c.Link(ctx, target)
					if err == nil {
						break
					}
					if !errors.Is(err, engine.ErrWorkerFull) {
						t.Errorf("link: %v", err)
						return
					}
					if !await(sig) {
						t.Errorf("user %d round %d: no capacity change came while waiting for a slot (%+v)", u, r, w.State())
						return
					}
				}
				switch n := u + r; n % 4 {
				case 0: // closed before sending
				default:
					wf := "echo"
					if n%3 == 0 {
						wf = "hang"
					}
					if err := c.Send(ctx, engine.DispatchRequest{Attempt: 1, Request: engine.ActivityRequest{WorkflowID: wf}}); err != nil {
						t.Errorf("send: %v", err)
					}
					if wf == "echo" && n%4 != 1 {
						if _, err := c.Receive(ctx); err != nil {
							t.Errorf("receive: %v", err)
						}
					} // else closed while it runs or waits in the mailbox
				}
				if err := c.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-sampled; err != nil {
		t.Error(err)
	}
	w.Stop("done")
	if err := w.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := w.State(); s.InFlight != 0 || s.BufferDepth != 0 {
		t.Errorf("state at the end = %+v, want nothing in flight", s)
	}
}

// await waits for a capacity signal, and reports false if none comes in a
// time far beyond any it should take: a guard against hanging, not a way
// to synchronise.
func await(c <-chan struct{}) bool {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-c:
		return true
	case <-t.C:
		return false
	}
}

// fired reports whether a capacity signal was given, without waiting.
func fired(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestCapacityChanged(t *testing.T) {
	ctx := context.Background()
	p := newPool(t)
	ch := channel(t)
	g := newGate()

	// Starting a worker.
	sig := p.CapacityChanged(ch) // the channel is not known yet
	if !fired(sig) {
		t.Fatal("the signal of an unknown channel is not closed")
	}
	p.AddChannel(ch)
	sig = p.CapacityChanged(ch)
	if fired(sig) {
		t.Fatal("the signal fired with nothing changed")
	}
	if again := p.CapacityChanged(ch); again != sig {
		t.Error("two waiters got different channels: not a broadcast")
	}
	w1, err := p.Start(ch, local.WorkerConfig{ID: "w1", Handler: g.handler})
	if err != nil {
		t.Fatal(err)
	}
	if !fired(sig) {
		t.Fatal("starting a worker did not fire the signal")
	}

	// A slot freeing: the signal has fired by the time the answer arrives.
	sw1 := snapshot(t, p, ch)[0]
	c := open(t, p, ch, sw1, "a")
	<-g.started
	sig = p.CapacityChanged(ch)
	if fired(sig) {
		t.Fatal("a fired signal was handed out again")
	}
	g.release <- struct{}{}
	if _, err := c.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if !fired(sig) {
		t.Fatal("a slot freed by an answer did not fire the signal")
	}
	_ = c.Close()

	// A slot freeing by Close.
	c = link(t, p, ch, sw1, "b")
	sig = p.CapacityChanged(ch)
	_ = c.Close()
	if !fired(sig) {
		t.Fatal("a slot freed by Close did not fire the signal")
	}

	// An exit takes the worker's capacity away: no signal; its restart
	// brings it back: a signal.
	c = open(t, p, ch, sw1, "c")
	<-g.started
	sig = p.CapacityChanged(ch)
	w1.Stop("crashed")
	if ev, err := c.Receive(ctx); err != nil || ev.Kind != engine.EventWorkerExited {
		t.Fatalf("receive = %+v, %v", ev, err)
	}
	_ = c.Close()
	if err := w1.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if fired(sig) {
		t.Fatal("an exit fired the signal")
	}
	if _, err := p.Start(ch, local.WorkerConfig{ID: "w1", Handler: g.handler}); err != nil {
		t.Fatal(err)
	}
	if !fired(sig) {
		t.Fatal("a restart did not fire the signal")
	}

	// Poke, as for a new router; an unknown channel is ignored.
	sig = p.CapacityChanged(ch)
	other, _ := engine.DispatchChannel("prod", "sms")
	p.Poke(other)
	if fired(sig) {
		t.Fatal("poking another channel fired this one's signal")
	}
	p.Poke(ch)
	if !fired(sig) {
		t.Fatal("Poke did not fire the signal")
	}

	// A worker removed from the channel: its slots are not the channel's.
	sw1 = snapshot(t, p, ch)[0]
	c = open(t, p, ch, sw1, "d")
	<-g.started
	removed, _ := p.Remove(ch, "w1")
	sig = p.CapacityChanged(ch)
	g.release <- struct{}{}
	if _, err := c.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if fired(sig) {
		t.Fatal("a slot of a removed worker fired the channel's signal")
	}
	removed.Stop("removed")

	// Removing the channel wakes its waiters, who then see it unknown.
	p.RemoveChannel(ch)
	if !fired(sig) {
		t.Fatal("removing the channel did not fire its signal")
	}
	if !fired(p.CapacityChanged(ch)) {
		t.Error("the signal of a removed channel is not closed")
	}
	if _, err := p.Workers(ctx, ch, engine.ActivityRequest{}); !errors.Is(err, engine.ErrUnknownChannel) {
		t.Errorf("snapshot of the removed channel: %v", err)
	}
}

// The signal is per channel: a slot freeing on one channel does not wake
// the waiters of another.
func TestCapacityChangedIsPerChannel(t *testing.T) {
	p := newPool(t)
	email := channel(t)
	sms, _ := engine.DispatchChannel("prod", "sms")
	echo := func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(req.Input)
	}
	for _, ch := range []engine.ChannelName{email, sms} {
		if _, err := p.Start(ch, local.WorkerConfig{ID: "w1", Handler: echo}); err != nil {
			t.Fatal(err)
		}
	}
	smsSig := p.CapacityChanged(sms)
	emailSig := p.CapacityChanged(email)
	c := open(t, p, email, snapshot(t, p, email)[0], "a")
	if _, err := c.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if !fired(emailSig) || fired(smsSig) {
		t.Errorf("after a slot of email freed: email fired %v, sms fired %v; want true, false", fired(emailSig), fired(smsSig))
	}
}
