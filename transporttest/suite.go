package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// Run runs every case of the suite, each as a subtest with a fresh harness
// from newHarness. The harness's cleanups (registered on the t it is
// given) must stop its workers and close its transport.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	cases := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"LinkAndExit", testLinkAndExit},
		{"SendAndReceive", testSendAndReceive},
		{"Failed", testFailed},
		{"NotStarted", testNotStarted},
		{"WorkerJoins", testWorkerJoins},
		{"WorkerLeaves", testWorkerLeaves},
		{"ExitedWorkersLeave", testExitedWorkersLeave},
		{"Capacity", testCapacity},
		{"Close", testClose},
		{"StartToClose", testStartToClose},
		{"ScheduleToStart", testScheduleToStart},
		{"CancelWhileWaiting", testCancelWhileWaiting},
		{"CancelWhileRunning", testCancelWhileRunning},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, newFixture(t, newHarness)) })
	}
}

// echo answers every activity with its input.
func echo(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
	return engine.Completed(req.Input)
}

// gate is a handler that reports each activity it starts, holds it until
// the test releases one or its context ends, and reports that end.
type gate struct {
	started chan string // workflow ids, as they start
	release chan struct{}
	ended   chan string // workflow ids whose context ended
	running atomic.Int64
	most    atomic.Int64 // the most ever running at once
}

func newGate() *gate {
	return &gate{started: make(chan string, 64), release: make(chan struct{}), ended: make(chan string, 64)}
}

func (g *gate) handler(ctx context.Context, req engine.ActivityRequest) engine.ActivityResult {
	n := g.running.Add(1)
	for {
		m := g.most.Load()
		if n <= m || g.most.CompareAndSwap(m, n) {
			break
		}
	}
	g.started <- req.WorkflowID
	select {
	case <-g.release:
		g.running.Add(-1)
		return engine.Completed(req.Input)
	case <-ctx.Done():
		g.running.Add(-1)
		g.ended <- req.WorkflowID
		return engine.Failed("cancelled")
	}
}

// request is an activity of workflow wf on f's channel.
func (f *fixture) request(wf string) engine.ActivityRequest {
	return engine.ActivityRequest{WorkflowID: wf, ActivityType: "send", TaskQueue: f.ch.TaskQueue(),
		Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"wf":"` + wf + `"}`)}}
}

// answeredBy checks that workflow wf's dispatch ended with an answer of
// worker id.
func (f *fixture) answeredBy(wf, id string) {
	f.t.Helper()
	ops := f.rec.of(wf)
	i := slices.IndexFunc(ops, func(op engine.Operation) bool { return op.Kind == engine.OpMessageReceived })
	if i < 0 || ops[i].WorkerID != id {
		f.t.Fatalf("workflow %s: operations %v, want an answer of worker %s", wf, kinds(ops), id)
	}
}

// The exit of a linked worker is seen through the link, and the activity
// goes to another worker.
func testLinkAndExit(t *testing.T, f *fixture) {
	g := newGate()
	a := f.start(WorkerConfig{ID: "a", Handler: g.handler})
	f.start(WorkerConfig{ID: "b", Handler: echo})
	out := f.dispatch(f.ctx, f.request("wf-1"))
	recv(t, g.started, "worker a to start the activity")
	a.Kill(t)
	o := f.wait(out, "after worker a exited")
	if o.err != nil || o.res.Status != engine.StatusCompleted {
		t.Fatalf("dispatch: %+v, %v", o.res, o.err)
	}
	ops := f.rec.of("wf-1")
	want := []string{"conversation_opened", "worker_selected(a)", "message_sent(a)", "worker_exited(a)",
		"worker_selected(b)", "message_sent(b)", "message_received(b)", "conversation_closed(b)"}
	if got := kinds(ops); !slices.Equal(got, want) {
		t.Fatalf("operations\n got %v\nwant %v", got, want)
	}
	if sel := ops[4]; sel.Attempt != 2 || !slices.Equal(sel.Excluded, []string{"a"}) {
		t.Fatalf("second selection: attempt %d, excluded %v; want 2, [a]", sel.Attempt, sel.Excluded)
	}
	if got := f.live(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("snapshot after the exit: %v, want [b]", got)
	}
	f.idle()
}

// A request reaches the worker whole, and its answer comes back whole:
// the payload's bytes and content type intact, whatever they are.
func testSendAndReceive(t *testing.T, f *fixture) {
	seen := make(chan engine.ActivityRequest, 8)
	f.start(WorkerConfig{ID: "w1", Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		seen <- req
		return engine.Completed(req.Input)
	}})
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	inputs := []engine.Payload{
		{ContentType: "application/json", Data: []byte(`{"to": "a@example.com", "n": [1, 2.50, -0], "s": "\u00e9\n"}`)},
		{ContentType: "application/json", Data: []byte(`"just a string"`)},
		{ContentType: "text/plain; charset=utf-8", Data: []byte("héllo\n\tworld ")},
		{ContentType: "application/octet-stream", Data: binary},
		{ContentType: "application/x-empty"},
		{},
	}
	for i, in := range inputs {
		wf := fmt.Sprint("wf-", i)
		req := engine.ActivityRequest{WorkflowID: wf, ActivityType: "send-email", TaskQueue: f.ch.TaskQueue(), Input: in,
			StartToClose: time.Hour, ScheduleToClose: 2 * time.Hour, ScheduleToStart: 3 * time.Hour}
		o := f.wait(f.dispatch(f.ctx, req), wf)
		if o.err != nil {
			t.Fatalf("%s: %v", wf, o.err)
		}
		got := recv(t, seen, "the worker to see "+wf)
		if got.WorkflowID != req.WorkflowID || got.ActivityType != req.ActivityType || got.TaskQueue != req.TaskQueue ||
			got.StartToClose != req.StartToClose || got.ScheduleToClose != req.ScheduleToClose {
			t.Errorf("%s: the worker saw %+v, want %+v", wf, got, req)
		}
		if !samePayload(got.Input, in) {
			t.Errorf("%s: the worker saw input %q (%s), want %q (%s)", wf, got.Input.Data, got.Input.ContentType, in.Data, in.ContentType)
		}
		if o.res.Status != engine.StatusCompleted || !samePayload(o.res.Output, in) {
			t.Errorf("%s: result %+v, want completed with %q (%s)", wf, o.res, in.Data, in.ContentType)
		}
		f.answeredBy(wf, "w1")
	}
}

func samePayload(a, b engine.Payload) bool {
	return a.ContentType == b.ContentType && bytes.Equal(a.Data, b.Data)
}

// A Failed answer fails the dispatch, naming the worker, its error text
// intact.
func testFailed(t *testing.T, f *fixture) {
	const msg = "no such mailbox: \"a@example.com\"\nline 2 ✗"
	f.start(WorkerConfig{ID: "w1", Handler: func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		return engine.Failed(msg)
	}})
	o := f.wait(f.dispatch(f.ctx, f.request("wf-1")), "a failed activity")
	var de *engine.DispatchError
	if !errors.Is(o.err, engine.ErrActivityFailed) || !errors.As(o.err, &de) || de.WorkerID != "w1" || !strings.Contains(o.err.Error(), msg) {
		t.Fatalf("dispatch error %v, want ErrActivityFailed naming w1 and %q", o.err, msg)
	}
	if o.res.Status != engine.StatusFailed || o.res.Error != msg {
		t.Fatalf("result %+v, want failed with %q", o.res, msg)
	}
	ops := f.rec.of("wf-1")
	if i := slices.IndexFunc(ops, func(op engine.Operation) bool { return op.Kind == engine.OpMessageReceived }); i < 0 ||
		ops[i].State.Name != engine.ActivityFailed || ops[i].State.RetryEligible {
		t.Fatalf("operations %v, want message_received failed, not retry eligible", kinds(ops))
	}
	f.idle()
}

// A worker that refuses an activity without starting it sends it back to
// the backlog: not an exit, the worker not excluded, the activity routed
// again.
func testNotStarted(t *testing.T, f *fixture) {
	r, ok := f.h.(Rejecter)
	if !ok {
		t.Skip("the transport cannot express a worker that refuses an activity it has a slot for")
	}
	w := r.StartRejecting(t, WorkerConfig{ID: "r", Handler: echo}, 1)
	f.until("worker r in the snapshot", func() bool { return slices.Contains(f.live(), w.ID()) })
	o := f.wait(f.dispatch(f.ctx, f.request("wf-1")), "a rejected activity")
	if o.err != nil || o.res.Status != engine.StatusCompleted {
		t.Fatalf("dispatch: %+v, %v", o.res, o.err)
	}
	ops := f.rec.of("wf-1")
	want := []string{"conversation_opened", "worker_selected(r)", "activity_waiting", "worker_selected(r)",
		"message_sent(r)", "message_received(r)", "conversation_closed(r)"}
	if got := kinds(ops); !slices.Equal(got, want) {
		t.Fatalf("operations\n got %v\nwant %v", got, want)
	}
	if !strings.Contains(ops[2].Message, "r") || len(ops[3].Excluded) != 0 || ops[3].Attempt != 2 {
		t.Fatalf("waiting %q, then attempt %d excluding %v; want the wait to name r, attempt 2 excluding none",
			ops[2].Message, ops[3].Attempt, ops[3].Excluded)
	}
	f.idle()
}

// An activity that finds no worker waits, and a worker that joins takes
// it, with no poll.
func testWorkerJoins(t *testing.T, f *fixture) {
	if ids := f.tr.Members(f.ch); len(ids) != 0 {
		t.Fatalf("members before any worker: %v", ids)
	}
	out := f.dispatch(f.ctx, f.request("wf-1"))
	f.rec.await(t, "the activity to wait", 1, is("wf-1", engine.OpActivityWaiting))
	if n := f.d.Waiting(f.ch); n != 1 {
		t.Fatalf("%d waiting, want 1", n)
	}
	f.start(WorkerConfig{ID: "late", Handler: echo})
	if o := f.wait(out, "after a worker joined"); o.err != nil {
		t.Fatal(o.err)
	}
	f.answeredBy("wf-1", "late")
	if got := f.tr.Members(f.ch); !slices.Equal(got, []string{"late"}) {
		t.Fatalf("members %v, want [late]", got)
	}
}

// A worker that stops gracefully leaves the membership (the capacity
// signal fires), takes no new work and still answers what it has.
func testWorkerLeaves(t *testing.T, f *fixture) {
	g := newGate()
	a := f.start(WorkerConfig{ID: "a", Handler: g.handler})
	f.start(WorkerConfig{ID: "b", Handler: echo})
	running := f.dispatch(f.ctx, f.request("wf-1"))
	recv(t, g.started, "worker a to start wf-1")
	signal := f.tr.CapacityChanged(f.ch)
	f.stop(a)
	select {
	case <-signal:
	default:
		t.Fatal("worker a left the membership without firing the capacity signal")
	}
	if got := f.tr.Members(f.ch); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("members %v, want [b]", got)
	}
	if o := f.wait(f.dispatch(f.ctx, f.request("wf-2")), "wf-2"); o.err != nil {
		t.Fatal(o.err)
	}
	f.answeredBy("wf-2", "b")
	close(g.release)
	if o := f.wait(running, "wf-1, held by the leaving worker"); o.err != nil {
		t.Fatalf("the activity of a worker that left: %v", o.err)
	}
	f.answeredBy("wf-1", "a")
}

// Exited workers stay members (they may come back): an activity that
// every worker but an exited one has failed waits for it. Once that one
// leaves, every remaining member has failed the activity, which ends at
// once with NoWorkersAvailable; one that only the leaver failed waits on
// for a worker to come.
func testExitedWorkersLeave(t *testing.T, f *fixture) {
	ga, gb, gc := newGate(), newGate(), newGate()
	c := f.start(WorkerConfig{ID: "c", Handler: gc.handler})
	a := f.start(WorkerConfig{ID: "a", Handler: ga.handler})
	b := f.start(WorkerConfig{ID: "b", Handler: gb.handler})
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	y := f.dispatch(ctx, f.request("wf-y")) // c is first in pool order
	recv(t, gc.started, "worker c to start wf-y")
	x := f.dispatch(f.ctx, f.request("wf-x"))
	recv(t, ga.started, "worker a to start wf-x")
	a.Kill(t)
	recv(t, gb.started, "worker b to start wf-x")
	b.Kill(t)
	f.rec.await(t, "wf-x to wait for c", 1, is("wf-x", engine.OpActivityWaiting))
	c.Kill(t)
	f.rec.await(t, "wf-y to wait after c exited", 1, is("wf-y", engine.OpActivityWaiting))
	if got := f.tr.Members(f.ch); !slices.Equal(got, []string{"c", "a", "b"}) {
		t.Fatalf("members %v, want c, a and b (exited)", got)
	}
	if n := f.d.Waiting(f.ch); n != 2 {
		t.Fatalf("%d waiting, want wf-x and wf-y", n)
	}
	f.leave(c)
	o := f.wait(x, "an activity every remaining member failed")
	if !errors.Is(o.err, engine.ErrNoWorkers) {
		t.Fatalf("wf-x: %v, want ErrNoWorkers", o.err)
	}
	if got := f.tr.Members(f.ch); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("members %v, want [a b]", got)
	}
	if n := f.d.Waiting(f.ch); n != 1 {
		t.Fatalf("%d waiting, want wf-y still", n)
	}
	cancel()
	if o := f.wait(y, "wf-y"); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("wf-y: %v, want context.Canceled", o.err)
	}
}

// max_in_flight is never exceeded under concurrent dispatches, and an
// activity waiting for a full worker takes the slot that frees.
func testCapacity(t *testing.T, f *fixture) {
	const slots, n = 3, 12
	g := newGate()
	f.start(WorkerConfig{ID: "w1", MaxInFlight: slots, Handler: g.handler})
	outs := make([]<-chan outcome, n)
	for i := range outs {
		outs[i] = f.dispatch(f.ctx, f.request(fmt.Sprint("wf-", i)))
	}
	for range slots {
		recv(t, g.started, "a slot's activity to start")
	}
	waiting := func(op engine.Operation) bool { return op.Kind == engine.OpActivityWaiting }
	f.rec.await(t, "the others to wait", n-slots, waiting)
	check := func(when string) {
		t.Helper()
		if m := g.most.Load(); m > slots {
			t.Fatalf("%s: %d activities ran at once on a worker of %d slots", when, m, slots)
		}
		for _, s := range f.snapshot() {
			if s.InFlight > s.MaxInFlight {
				t.Fatalf("%s: state %+v beyond its capacity", when, s)
			}
		}
	}
	check("full")
	select {
	case wf := <-g.started:
		t.Fatalf("%s started on a full worker", wf)
	default:
	}
	for i := range n {
		g.release <- struct{}{} // one answer: one slot frees
		if i < n-slots {
			recv(t, g.started, "a waiting activity to take the freed slot")
		}
		check(fmt.Sprintf("after %d answers", i+1))
	}
	for i, out := range outs {
		if o := f.wait(out, fmt.Sprint("wf-", i)); o.err != nil {
			t.Fatalf("wf-%d: %v", i, o.err)
		}
	}
	if m := g.most.Load(); m != slots {
		t.Fatalf("at most %d ran at once, want %d", m, slots)
	}
	if w := f.rec.count(waiting); w != n-slots {
		t.Fatalf("%d waits recorded, want %d (one per activity that found the worker full)", w, n-slots)
	}
	f.idle()
}

// A conversation's Close releases its slot whatever the attempt had come
// to, and a second Close is an error.
func testClose(t *testing.T, f *fixture) {
	g := newGate()
	f.start(WorkerConfig{ID: "w1", MaxInFlight: 2, Handler: g.handler})
	ctx := f.ctx
	worker := func() engine.Worker {
		ws, err := f.tr.Workers(ctx, f.ch, engine.ActivityRequest{})
		if err != nil || len(ws) != 1 {
			t.Fatalf("snapshot %v, %v", ws, err)
		}
		return ws[0]
	}
	open := func(id string) engine.Conversation {
		c, err := f.convs.Open(ctx, "wf-"+id, f.ch, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Link(ctx, worker()); err != nil {
			t.Fatalf("link %s: %v", id, err)
		}
		return c
	}
	send := func(c engine.Conversation, id string) {
		if err := c.Send(ctx, engine.DispatchRequest{ConversationID: id, Attempt: 1, Request: f.request("wf-" + id)}); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
	}
	// Linked, never sent.
	c := open("linked")
	if s := worker().State; s.InFlight != 1 {
		t.Fatalf("after a link: %+v, want one slot taken", s)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	f.idle()
	if err := c.(*counted).Conversation.Close(); err == nil { // not counted: the dispatcher never does this
		t.Fatal("a second Close succeeded")
	}
	// Both slots taken: a third link fails with ErrWorkerFull.
	c1, c2 := open("c1"), open("c2")
	c3, err := f.convs.Open(ctx, "wf-c3", f.ch, "c3")
	if err != nil {
		t.Fatal(err)
	}
	if err := c3.Link(ctx, worker()); !errors.Is(err, engine.ErrWorkerFull) {
		t.Fatalf("a link to a full worker: %v, want ErrWorkerFull", err)
	}
	if err := c3.Close(); err != nil {
		t.Fatal(err)
	}
	// Running: Close ends the handler's context and frees the slot.
	send(c1, "c1")
	recv(t, g.started, "c1 to start")
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if wf := recv(t, g.ended, "the handler of c1 to be cancelled"); wf != "wf-c1" {
		t.Fatalf("%s cancelled, want wf-c1", wf)
	}
	// Answered: the answer freed the slot; Close frees nothing more.
	send(c2, "c2")
	recv(t, g.started, "c2 to start")
	g.release <- struct{}{}
	ev, err := c2.Receive(ctx)
	if err != nil || ev.Kind != engine.EventResponse || ev.WorkerID != "w1" || ev.Attempt != 1 {
		t.Fatalf("receive: %+v, %v", ev, err)
	}
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	f.idle()
	// The worker has both slots again.
	d1, d2 := open("d1"), open("d2")
	for _, c := range []engine.Conversation{d1, d2} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f.idle()
}

// A worker that never answers runs into the attempt's start-to-close: the
// dispatch fails saying so, the worker's handler is cancelled, and the
// slot comes back for the next activity.
func testStartToClose(t *testing.T, f *fixture) {
	g := newGate()
	f.start(WorkerConfig{ID: "w1", Handler: g.handler})
	req := f.request("wf-1")
	req.StartToClose = 50 * time.Millisecond
	out := f.dispatch(f.ctx, req)
	o := f.wait(out, "a start-to-close timeout")
	var te *engine.TimeoutError
	if !errors.Is(o.err, engine.ErrStartToCloseTimeout) || !errors.As(o.err, &te) {
		t.Fatalf("dispatch: %v, want a start-to-close timeout", o.err)
	}
	if got := kinds(f.rec.of("wf-1")); !slices.Contains(got, "worker_timed_out(w1)") {
		t.Fatalf("operations %v, want worker_timed_out", got)
	}
	recv(t, g.started, "wf-1 to have started")
	recv(t, g.ended, "the handler of wf-1 to be cancelled")
	f.idle()
	next := f.dispatch(f.ctx, f.request("wf-2"))
	recv(t, g.started, "wf-2 to take the slot back")
	g.release <- struct{}{}
	if o := f.wait(next, "wf-2"); o.err != nil {
		t.Fatal(o.err)
	}
}

// An activity that waits for a slot longer than its schedule-to-start
// fails saying so, and leaves the backlog.
func testScheduleToStart(t *testing.T, f *fixture) {
	g := newGate()
	f.start(WorkerConfig{ID: "w1", Handler: g.handler})
	busy := f.dispatch(f.ctx, f.request("busy"))
	recv(t, g.started, "the worker to be busy")
	req := f.request("wf-1")
	req.ScheduleToStart = 50 * time.Millisecond
	o := f.wait(f.dispatch(f.ctx, req), "a schedule-to-start timeout")
	if !errors.Is(o.err, engine.ErrScheduleToStartTimeout) {
		t.Fatalf("dispatch: %v, want a schedule-to-start timeout", o.err)
	}
	if n := f.d.Waiting(f.ch); n != 0 {
		t.Fatalf("%d still waiting", n)
	}
	g.release <- struct{}{}
	if o := f.wait(busy, "busy"); o.err != nil {
		t.Fatal(o.err)
	}
	f.idle()
}

// Cancelling a dispatch that waits in the backlog ends it at once, with
// the context's error, and it waits no more.
func testCancelWhileWaiting(t *testing.T, f *fixture) {
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	out := f.dispatch(ctx, f.request("wf-1"))
	f.rec.await(t, "the activity to wait", 1, is("wf-1", engine.OpActivityWaiting))
	cancel()
	o := f.wait(out, "a cancelled wait")
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("dispatch: %v, want context.Canceled", o.err)
	}
	if n := f.d.Waiting(f.ch); n != 0 {
		t.Fatalf("%d still waiting", n)
	}
	// A worker that joins now gets nothing of it.
	f.start(WorkerConfig{ID: "w1", Handler: echo})
	f.idle()
}

// Cancelling a dispatch whose activity runs ends it with the context's
// error; the worker's handler is cancelled and the slot comes back.
func testCancelWhileRunning(t *testing.T, f *fixture) {
	g := newGate()
	f.start(WorkerConfig{ID: "w1", Handler: g.handler})
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	out := f.dispatch(ctx, f.request("wf-1"))
	recv(t, g.started, "wf-1 to start")
	cancel()
	o := f.wait(out, "a cancelled activity")
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("dispatch: %v, want context.Canceled", o.err)
	}
	recv(t, g.ended, "the handler of wf-1 to be cancelled")
	f.idle()
	next := f.dispatch(f.ctx, f.request("wf-2"))
	recv(t, g.started, "wf-2 to take the slot back")
	g.release <- struct{}{}
	if o := f.wait(next, "wf-2"); o.err != nil {
		t.Fatal(o.err)
	}
}
