package remote_test

import (
	"context"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/remote"
)

// fakeClock moves only when the test says.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// viewOf returns what the transport shows routers of worker id.
func (e *env) viewOf(t *testing.T, id string) engine.ConsumerStateView {
	t.Helper()
	ws, err := e.t.Workers(t.Context(), channel, engine.ActivityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.ID() == id {
			return w.State
		}
	}
	t.Fatalf("no worker %s", id)
	return engine.ConsumerStateView{}
}

// TestObservedFigures: the transport times each request from when it
// leaves to when its answer arrives, counts failed answers and exits on
// the channel, and a worker that exits and registers again within its
// grace keeps what was observed of its id.
func TestObservedFigures(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, envOpts{clock: clock})
	p := newPeer(t, e, "p", "i1")
	e.waitFor(t, "worker p", func() bool { return slices.Contains(e.live(t), "p") })
	if v := e.viewOf(t, "p"); v.LatencyEWMA != 0 || v.LatencyPeakEWMA != 0 || v.ErrorRate != 0 || v.Exits != 0 {
		t.Fatalf("a new worker has figures: %+v", v)
	}
	seq := uint64(1)
	// run dispatches one activity that p answers with res after d.
	run := func(p *peer, wf string, d time.Duration, res engine.ActivityResult) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := e.d.Dispatch(context.Background(), ns, request(wf))
			done <- err
		}()
		m, r := p.request()
		clock.advance(d)
		p.send(m.Reply, &protocol.Ack{Version: 1, WorkerID: r.WorkerID, ConversationID: r.ConversationID, Attempt: r.Attempt,
			Status: protocol.AckAccepted, State: state(seq, 1)})
		p.send(m.Reply, &protocol.Response{Version: 1, WorkerID: r.WorkerID, ConversationID: r.ConversationID, Attempt: r.Attempt,
			Result: protocol.ResultOf(res), State: state(seq+1, 0)})
		seq += 2
		<-done
	}
	run(p, "wf-1", 30*time.Millisecond, engine.Completed(engine.Payload{}))
	if v := e.viewOf(t, "p"); math.Abs(v.LatencyEWMA-0.03) > 1e-9 || math.Abs(v.LatencyPeakEWMA-0.03) > 1e-9 || v.ErrorRate != 0 {
		t.Fatalf("after an answer in 30ms: %+v", v)
	}
	run(p, "wf-2", 10*time.Millisecond, engine.Failed("no"))
	// 10ms passed between the two: the first counts a little less.
	if v := e.viewOf(t, "p"); math.Abs(v.LatencyEWMA-0.02) > 1e-4 || math.Abs(v.ErrorRate-0.5) > 1e-3 {
		t.Fatalf("after a failed answer in 10ms: %+v", v)
	}

	// p crashes holding an activity: an exit. The activity has no other
	// worker to go to. p comes back (a new instance, the same id) within
	// its grace, and keeps its figures.
	done := make(chan error, 1)
	go func() {
		_, err := e.d.Dispatch(context.Background(), ns, request("wf-3"))
		done <- err
	}()
	p.request()
	exited := remote.Exited(e.t, "p")
	p.nc.Close()
	<-exited
	if err := <-done; err == nil {
		t.Fatal("an activity whose only worker exited completed")
	}
	q := newPeer(t, e, "p", "i2")
	e.waitFor(t, "p again", func() bool { return slices.Contains(e.live(t), "p") })
	if v := e.viewOf(t, "p"); v.Exits != 1 || math.Abs(v.ErrorRate-0.5) > 1e-3 {
		t.Fatalf("after an exit and a registration again: %+v; want 1 exit and the error rate kept", v)
	}
	seq = 1
	run(q, "wf-4", 0, engine.Completed(engine.Payload{}))
	if v := e.viewOf(t, "p"); v.Exits != 1 || v.ErrorRate >= 0.5 {
		t.Fatalf("after an answer from the new instance: %+v; want 1 exit and the error rate below 0.5", v)
	}
	clock.advance(engine.ObservedExitWindow)
	if v := e.viewOf(t, "p"); v.Exits != 0 {
		t.Fatalf("an exit a window ago still counts: %+v", v)
	}
}

// crashHolding registers worker p, which nothing is observed of yet,
// sends it an activity on a conversation of its own and crashes it (its
// connection closes) before it answers; it returns the conversation, which
// has not received the exit.
func crashHolding(t *testing.T, e *env) engine.Conversation {
	t.Helper()
	p := newPeer(t, e, "p", "i1")
	e.waitFor(t, "worker p", func() bool { return slices.Contains(e.live(t), "p") })
	ws, err := e.t.Workers(t.Context(), channel, request("wf-1"))
	if err != nil || len(ws) != 1 {
		t.Fatalf("snapshot: %v, %v", ws, err)
	}
	c, err := e.t.Open(t.Context(), "wf-1", channel, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Link(t.Context(), ws[0]); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		sent <- c.Send(context.Background(), engine.DispatchRequest{ConversationID: "c1", Attempt: 1, Request: request("wf-1")})
	}()
	p.request()
	exited := remote.Exited(e.t, "p")
	p.nc.Close()
	<-exited
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	return c
}

// TestExitObservedAfterRegistrationAgain: a worker nothing was observed of
// yet crashes holding a request and registers again before the
// conversation sees the exit; the exit still counts for the id.
func TestExitObservedAfterRegistrationAgain(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, envOpts{clock: clock})
	c := crashHolding(t, e)
	newPeer(t, e, "p", "i2")
	e.waitFor(t, "p again", func() bool { return slices.Contains(e.live(t), "p") })
	if ev, err := c.Receive(t.Context()); err != nil || ev.Kind != engine.EventWorkerExited {
		t.Fatalf("receive: %+v, %v", ev, err)
	}
	c.Close()
	if v := e.viewOf(t, "p"); v.Exits != 1 {
		t.Errorf("p's exit, seen after it registered again: %+v; want 1 exit", v)
	}
}

// TestExitSeenOnlyByClose: as in local, an activity whose worker exited
// before answering counts as an exit even if its conversation closes
// without receiving the exit.
func TestExitSeenOnlyByClose(t *testing.T) {
	e := newEnv(t, envOpts{reconnectGrace: -1})
	c := crashHolding(t, e)
	c.Close()
	newPeer(t, e, "p", "i2")
	e.waitFor(t, "p again", func() bool { return slices.Contains(e.live(t), "p") })
	if v := e.viewOf(t, "p"); v.Exits != 1 || v.LatencyEWMA != 0 {
		t.Errorf("after an exit its conversation closed on: %+v; want 1 exit and no latency sample", v)
	}
}
