package local_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
)

// Every test must leave no goroutine behind once its pool or workers closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func channel(t *testing.T) engine.ChannelName {
	t.Helper()
	ch, err := engine.DispatchChannel("prod", "email")
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func newPool(t *testing.T) *local.Pool {
	t.Helper()
	p := local.NewPool()
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

// gate is a handler that reports each start and waits for a release.
type gate struct {
	started chan string
	release chan struct{}
}

func newGate() *gate { return &gate{started: make(chan string, 16), release: make(chan struct{})} }

func (g *gate) handler(ctx context.Context, req engine.ActivityRequest) engine.ActivityResult {
	g.started <- req.WorkflowID
	select {
	case <-g.release:
		return engine.Completed(engine.Payload{Data: []byte(req.WorkflowID)})
	case <-ctx.Done():
		return engine.Failed("cancelled")
	}
}

// open links a new conversation to w and sends one activity for workflow wf.
func open(t *testing.T, p *local.Pool, ch engine.ChannelName, w engine.Worker, wf string) engine.Conversation {
	t.Helper()
	ctx := context.Background()
	c, err := p.Open(ctx, wf, ch, "c-"+wf)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Link(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, engine.DispatchRequest{ConversationID: "c-" + wf, Request: engine.ActivityRequest{WorkflowID: wf}}); err != nil {
		t.Fatal(err)
	}
	return c
}

func snapshot(t *testing.T, p *local.Pool, ch engine.ChannelName) []engine.Worker {
	t.Helper()
	ws, err := p.Workers(context.Background(), ch, engine.ActivityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// link opens a conversation for workflow wf and links it to w, taking a
// slot, without sending anything.
func link(t *testing.T, p *local.Pool, ch engine.ChannelName, w engine.Worker, wf string) engine.Conversation {
	t.Helper()
	c, err := p.Open(context.Background(), wf, ch, "c-"+wf)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Link(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	return c
}

// send sends the activity of workflow wf on a linked conversation.
func send(t *testing.T, c engine.Conversation, wf string) {
	t.Helper()
	if err := c.Send(context.Background(), engine.DispatchRequest{ConversationID: "c-" + wf, Attempt: 1, Request: engine.ActivityRequest{WorkflowID: wf}}); err != nil {
		t.Fatal(err)
	}
}

// A link takes a slot, so the snapshot counts it before anything is sent;
// a link to a worker whose slots are all taken fails and takes nothing.
func TestSnapshotCountsSlots(t *testing.T) {
	p := newPool(t)
	ch := channel(t)
	g := newGate()
	w, err := p.Start(ch, local.WorkerConfig{ID: "w1", MaxInFlight: 2, Tags: []string{"eu"}, Handler: g.handler})
	if err != nil {
		t.Fatal(err)
	}
	ws := snapshot(t, p, ch)
	if len(ws) != 1 || ws[0].ID() != "w1" || ws[0].Participant != w {
		t.Fatalf("snapshot = %+v", ws)
	}
	want := engine.ConsumerStateView{ID: "w1", MaxInFlight: 2, Tags: []string{"eu"}}
	if got := ws[0].State; got.ID != want.ID || got.InFlight != 0 || got.MaxInFlight != 2 || got.BufferDepth != 0 || !got.HasAffinity("eu") {
		t.Fatalf("idle state = %+v, want %+v", got, want)
	}

	a := open(t, p, ch, ws[0], "a")
	<-g.started
	b := link(t, p, ch, ws[0], "b")
	if s := w.State(); s.InFlight != 2 || s.BufferDepth != 1 || s.Available() != 0 || s.HasCapacity() {
		t.Fatalf("state with one running and one linked = %+v, want 2 in flight, 1 not started, no capacity", s)
	}
	c, _ := p.Open(context.Background(), "c", ch, "c-c")
	err = c.Link(context.Background(), ws[0])
	if !errors.Is(err, engine.ErrWorkerFull) || !strings.Contains(err.Error(), "worker w1") {
		t.Fatalf("link to a full worker: %v, want ErrWorkerFull naming w1", err)
	}
	if s := w.State(); s.InFlight != 2 {
		t.Fatalf("a failed link changed in flight to %d", s.InFlight)
	}
	if err := c.Send(context.Background(), engine.DispatchRequest{}); err == nil || !strings.Contains(err.Error(), "send before link") {
		t.Errorf("send after a failed link: %v, want send before link", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if s := w.State(); s.InFlight != 2 {
		t.Fatalf("closing a conversation whose link failed changed in flight to %d", s.InFlight)
	}
	send(t, b, "b")
	<-g.started
	if s := w.State(); s.InFlight != 2 || s.BufferDepth != 0 {
		t.Fatalf("state with both running = %+v, want 2 in flight, none buffered", s)
	}
	close(g.release)
	for _, c := range []engine.Conversation{a, b} {
		ev, err := c.Receive(context.Background())
		if err != nil || ev.Kind != engine.EventResponse || ev.Result.Status != engine.StatusCompleted || ev.WorkerID != "w1" {
			t.Fatalf("receive = %+v, %v", ev, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if s := w.State(); s.InFlight != 0 {
		t.Errorf("in flight %d after all answered", s.InFlight)
	}
	w.Stop("done")
	if err := w.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := w.State(); s.InFlight != 0 {
		t.Errorf("in flight %d after exit", s.InFlight)
	}
}

func TestExitReachesLinkedConversations(t *testing.T) {
	p := newPool(t)
	ch := channel(t)
	g := newGate()
	w, err := p.Start(ch, local.WorkerConfig{ID: "w1", MaxInFlight: 2, Handler: g.handler})
	if err != nil {
		t.Fatal(err)
	}
	ws := snapshot(t, p, ch)
	running := open(t, p, ch, ws[0], "a")
	linked := link(t, p, ch, ws[0], "b")
	<-g.started
	w.Stop("node drained")
	send(t, linked, "b") // to the exited worker: dropped, and its slot freed
	for _, c := range []engine.Conversation{running, linked} {
		ev, err := c.Receive(context.Background())
		if err != nil || ev.Kind != engine.EventWorkerExited || ev.WorkerID != "w1" || ev.Message != "node drained" {
			t.Errorf("receive = %+v, %v; want the exit of w1", ev, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if ws := snapshot(t, p, ch); len(ws) != 0 {
		t.Errorf("exited worker still in the snapshot: %+v", ws)
	}
	if got := w.ExitMessage(); got != "node drained" {
		t.Errorf("exit message = %q", got)
	}
	if err := w.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := w.State(); s.InFlight != 0 {
		t.Errorf("in flight %d after exit", s.InFlight)
	}

	// Linking the stale snapshot entry of an exited worker is allowed: the
	// exit is then the next event.
	late := open(t, p, ch, ws[0], "c")
	ev, err := late.Receive(context.Background())
	if err != nil || ev.Kind != engine.EventWorkerExited {
		t.Errorf("receive after linking an exited worker = %+v, %v", ev, err)
	}
	if err := late.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPanicIsAnExit(t *testing.T) {
	p := newPool(t)
	ch := channel(t)
	w, err := p.Start(ch, local.WorkerConfig{ID: "w1", MaxInFlight: 3, Handler: func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		panic("index out of range")
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, p, ch, snapshot(t, p, ch)[0], "a")
	ev, err := c.Receive(context.Background())
	if err != nil || ev.Kind != engine.EventWorkerExited || ev.Message != "panic: index out of range" {
		t.Fatalf("receive = %+v, %v", ev, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCloseCancelsTheHandler(t *testing.T) {
	p := newPool(t)
	ch := channel(t)
	cancelled := make(chan error, 1)
	started := make(chan struct{})
	w, err := p.Start(ch, local.WorkerConfig{ID: "w1", Handler: func(ctx context.Context, _ engine.ActivityRequest) engine.ActivityResult {
		close(started)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return engine.Failed("cancelled")
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, p, ch, snapshot(t, p, ch)[0], "a")
	<-started
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Errorf("handler context ended with %v", err)
	}
	if err := c.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	if _, err := c.Receive(context.Background()); err == nil {
		t.Error("Receive after Close succeeded")
	}
	w.Stop("done")
	if err := w.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := w.State(); s.InFlight != 0 {
		t.Errorf("in flight %d", s.InFlight)
	}
}

func TestReceiveHonoursContext(t *testing.T) {
	p := newPool(t)
	ch := channel(t)
	g := newGate()
	if _, err := p.Start(ch, local.WorkerConfig{ID: "w1", Handler: g.handler}); err != nil {
		t.Fatal(err)
	}
	c := open(t, p, ch, snapshot(t, p, ch)[0], "a")
	<-g.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Receive(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("receive = %v, want context.Canceled", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMembership(t *testing.T) {
	p := newPool(t)
	ch := channel(t)
	h := func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(engine.Payload{})
	}
	ids := func() []string {
		var out []string
		for _, w := range snapshot(t, p, ch) {
			out = append(out, w.ID())
		}
		return out
	}
	for _, id := range []string{"w1", "w2", "w3"} {
		if _, err := p.Start(ch, local.WorkerConfig{ID: id, Handler: h}); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, p, ch)
	if _, err := p.Start(ch, local.WorkerConfig{ID: "w2", Handler: h}); err == nil || !strings.Contains(err.Error(), "running worker") {
		t.Errorf("duplicate id: err = %v", err)
	}
	w2 := before[1].Participant.(*local.Worker)
	w2.Stop("crashed")
	if got := strings.Join(ids(), ","); got != "w1,w3" {
		t.Errorf("after w2 exited: %s", got)
	}
	restarted, err := p.Start(ch, local.WorkerConfig{ID: "w2", Handler: h})
	if err != nil {
		t.Fatalf("restart w2: %v", err)
	}
	if got := strings.Join(ids(), ","); got != "w1,w2,w3" {
		t.Errorf("restarted w2 should keep its place: %s", got)
	}
	if removed, ok := p.Remove(ch, "w1"); !ok || removed.ID() != "w1" {
		t.Fatalf("remove w1 = %v, %v", removed, ok)
	}
	if _, ok := p.Remove(ch, "w1"); ok {
		t.Error("removed w1 twice")
	}
	if got := strings.Join(ids(), ","); got != "w2,w3" {
		t.Errorf("after removing w1: %s", got)
	}
	if len(before) != 3 || before[1].Participant == restarted {
		t.Errorf("an earlier snapshot changed: %+v", before)
	}
	other, _ := engine.DispatchChannel("prod", "sms")
	if _, err := p.Workers(context.Background(), other, engine.ActivityRequest{}); !errors.Is(err, engine.ErrUnknownChannel) {
		t.Errorf("unknown channel: err = %v", err)
	}
	p.AddChannel(other)
	if ws, err := p.Workers(context.Background(), other, engine.ActivityRequest{}); err != nil || len(ws) != 0 {
		t.Errorf("empty channel: %v, %v", ws, err)
	}
}

// Channels added or removed together: the ones already there keep their
// workers, a name given twice or unknown is harmless, and a snapshot taken
// before is not affected.
func TestAddAndRemoveManyChannels(t *testing.T) {
	p := newPool(t)
	name := func(q string) engine.ChannelName {
		ch, err := engine.DispatchChannel("prod", q)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	a, b, c, unknown := name("a"), name("b"), name("c"), name("unknown")
	h := func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(engine.Payload{})
	}
	w1, err := p.Start(a, local.WorkerConfig{ID: "w1", Handler: h}) // Start adds a channel it does not know
	if err != nil {
		t.Fatal(err)
	}
	p.AddChannels(a, b, c, b)
	ids := func(ch engine.ChannelName) string {
		ws, err := p.Workers(context.Background(), ch, engine.ActivityRequest{})
		if err != nil {
			return err.Error()
		}
		var out []string
		for _, w := range ws {
			out = append(out, w.ID())
		}
		return "[" + strings.Join(out, ",") + "]"
	}
	if got := ids(a) + ids(b) + ids(c); got != "[w1][][]" {
		t.Fatalf("after AddChannels(a, b, c, b): a, b, c = %s, want [w1][][]", got)
	}
	w2, err := p.Start(c, local.WorkerConfig{ID: "w2", Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, p, a)
	removed := p.RemoveChannels(c, a, unknown, a)
	if len(removed) != 2 || removed[0] != w2 || removed[1] != w1 {
		t.Errorf("RemoveChannels(c, a, unknown, a) = %v, want [w2 w1]", removed)
	}
	for _, ch := range []engine.ChannelName{a, c, unknown} {
		if _, err := p.Workers(context.Background(), ch, engine.ActivityRequest{}); !errors.Is(err, engine.ErrUnknownChannel) {
			t.Errorf("%s after RemoveChannels: %v, want ErrUnknownChannel", ch.Short(), err)
		}
	}
	if got := ids(b); got != "[]" {
		t.Errorf("b after removing a and c: %s", got)
	}
	if len(before) != 1 || before[0].ID() != "w1" {
		t.Errorf("a snapshot taken before the removal changed: %+v", before)
	}
	if p.RemoveChannels() != nil || p.RemoveChannels(a) != nil {
		t.Error("removing nothing, or a channel already removed, returned workers")
	}
}

func TestConfigErrors(t *testing.T) {
	p := newPool(t)
	ch := channel(t)
	h := func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(engine.Payload{})
	}
	for _, tc := range []struct {
		cfg  local.WorkerConfig
		want string
	}{
		{local.WorkerConfig{Handler: h}, "worker id is empty"},
		{local.WorkerConfig{ID: "w1"}, "no handler"},
		{local.WorkerConfig{ID: "w1", MaxInFlight: -1, Handler: h}, "negative"},
	} {
		if _, err := p.Start(ch, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := p.Start(engine.ChannelName{}, local.WorkerConfig{ID: "w1", Handler: h}); !errors.Is(err, engine.ErrInvalidChannel) {
		t.Errorf("zero channel: %v", err)
	}
	c, _ := p.Open(context.Background(), "wf", ch, "c1")
	if err := c.Link(context.Background(), engine.Worker{Participant: "nats-conn"}); err == nil || !strings.Contains(err.Error(), "not an in-process worker") {
		t.Errorf("link foreign participant: %v", err)
	}
	if err := c.Send(context.Background(), engine.DispatchRequest{}); err == nil {
		t.Error("send before link succeeded")
	}
	_ = c.Close()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Start(ch, local.WorkerConfig{ID: "w9", Handler: h}); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// An activity whose conversation closed while it waited in the mailbox
// keeps its slot until an executor takes it out, so the mailbox never holds
// more than the worker's slots, and a send never waits for room.
func TestSendNeverWaits(t *testing.T) {
	p := newPool(t)
	ch := channel(t)
	started, finish := make(chan string, 4), make(chan struct{})
	w, err := p.Start(ch, local.WorkerConfig{ID: "w1", Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		started <- req.WorkflowID
		<-finish // slow to notice that its context ended
		return engine.Completed(engine.Payload{})
	}})
	if err != nil {
		t.Fatal(err)
	}
	ws := snapshot(t, p, ch)
	a := open(t, p, ch, ws[0], "a")
	<-started
	if err := a.Close(); err != nil { // frees a's slot; the handler goes on a while
		t.Fatal(err)
	}
	if s := w.State(); s.InFlight != 0 {
		t.Fatalf("in flight %d after the only conversation closed", s.InFlight)
	}
	b := link(t, p, ch, ws[0], "b")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Send(ctx, engine.DispatchRequest{ConversationID: "c-b", Attempt: 1, Request: engine.ActivityRequest{WorkflowID: "b"}}); err != nil {
		t.Fatalf("send into a reserved slot: %v", err)
	}
	if s := w.State(); s.InFlight != 1 || s.BufferDepth != 1 {
		t.Fatalf("state with b waiting for the busy executor = %+v, want 1 in flight, 1 buffered", s)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if s := w.State(); s.InFlight != 1 || s.BufferDepth != 1 {
		t.Fatalf("state after b closed while in the mailbox = %+v, want its slot kept: 1 in flight, 1 buffered", s)
	}
	c, _ := p.Open(context.Background(), "c", ch, "c-c")
	if err := c.Link(context.Background(), ws[0]); !errors.Is(err, engine.ErrWorkerFull) {
		t.Fatalf("link while the mailbox is full: %v, want ErrWorkerFull", err)
	}
	_ = c.Close()
	freed := p.CapacityChanged(ch)
	close(finish) // a's handler returns; the executor takes b out, drops it and frees its slot
	if !await(freed) {
		t.Fatalf("no capacity change after the executor was free (%+v)", w.State())
	}
	if s := w.State(); s.InFlight != 0 || s.BufferDepth != 0 {
		t.Fatalf("state after the executor dropped b = %+v, want idle", s)
	}
	select {
	case wf := <-started:
		t.Errorf("the handler ran %s, whose conversation had closed", wf)
	default:
	}
}

func TestDrainFinishesWhatItHasThenExits(t *testing.T) {
	p := newPool(t)
	ch := channel(t)
	g := newGate()
	w, err := p.Start(ch, local.WorkerConfig{ID: "w1", MaxInFlight: 2, Handler: g.handler})
	if err != nil {
		t.Fatal(err)
	}
	ws := snapshot(t, p, ch)
	a, b := open(t, p, ch, ws[0], "a"), open(t, p, ch, ws[0], "b")
	<-g.started
	<-g.started

	removed := p.RemoveChannel(ch)
	if len(removed) != 1 || removed[0] != w {
		t.Fatalf("RemoveChannel = %v, want [w1]", removed)
	}
	if _, err := p.Workers(context.Background(), ch, engine.ActivityRequest{}); !errors.Is(err, engine.ErrUnknownChannel) {
		t.Fatalf("snapshot of a removed channel: %v, want ErrUnknownChannel", err)
	}
	w.Drain("channel removed")
	select {
	case <-w.Done():
		t.Fatal("a draining worker exited with work left")
	default:
	}
	close(g.release)
	for _, c := range []engine.Conversation{a, b} {
		ev, err := c.Receive(context.Background())
		if err != nil || ev.Kind != engine.EventResponse || ev.Result.Status != engine.StatusCompleted {
			t.Fatalf("receive while draining = %+v, %v; want the activity finished", ev, err)
		}
		c.Close()
	}
	if err := w.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w.ExitMessage(); got != "channel removed" {
		t.Errorf("exit message %q, want %q", got, "channel removed")
	}
	if p.RemoveChannel(ch) != nil {
		t.Error("removing a channel twice returned workers")
	}
}

// An answer leaves only once the activity no longer counts as in flight, so
// the next routing decision after it sees the worker idle.
func TestAnswerAfterInFlightDrops(t *testing.T) {
	p := newPool(t)
	ch := channel(t)
	w, err := p.Start(ch, local.WorkerConfig{ID: "w1", Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(engine.Payload{})
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		c := open(t, p, ch, snapshot(t, p, ch)[0], fmt.Sprint(i))
		if _, err := c.Receive(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := w.State().InFlight; n != 0 {
			t.Fatalf("answer %d received while the worker counts %d in flight", i, n)
		}
		c.Close()
	}
}

// A conversation that chose the worker before it was drained, but has not
// sent yet, still gets its answer.
func TestDrainWaitsForLinkedConversations(t *testing.T) {
	p := newPool(t)
	ch := channel(t)
	w, err := p.Start(ch, local.WorkerConfig{ID: "w1", Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(engine.Payload{Data: []byte(req.WorkflowID)})
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := p.Open(ctx, "wf", ch, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Link(ctx, snapshot(t, p, ch)[0]); err != nil {
		t.Fatal(err)
	}
	p.Remove(ch, "w1")
	w.Drain("removed")
	if err := c.Send(ctx, engine.DispatchRequest{ConversationID: "c1", Attempt: 1, Request: engine.ActivityRequest{WorkflowID: "wf"}}); err != nil {
		t.Fatal(err)
	}
	ev, err := c.Receive(ctx)
	if err != nil || ev.Kind != engine.EventResponse {
		t.Fatalf("receive from a draining worker: %+v, %v; want its answer", ev, err)
	}
	select {
	case <-w.Done():
		t.Fatal("the worker exited while a conversation was still linked to it")
	default:
	}
	c.Close()
	if err := w.Wait(ctx); err != nil || w.ExitMessage() != "removed" {
		t.Fatalf("after the last conversation closed: %v, exit message %q", err, w.ExitMessage())
	}
}

// An answer no conversation waits for any more (its conversation closed
// first) goes to that conversation's reply channel, which no later
// conversation is given: only the reply channel of an answer received is
// used again. With one slot the late answer is sent before the worker
// takes the next activity.
func TestLateAnswerReachesNoOtherConversation(t *testing.T) {
	p, ch := newPool(t), channel(t)
	ctx := context.Background()
	started, release := make(chan struct{}, 1), make(chan struct{})
	if _, err := p.Start(ch, local.WorkerConfig{ID: "w1", Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		if req.WorkflowID == "late" {
			started <- struct{}{}
			<-release
		}
		return engine.Completed(engine.Payload{Data: []byte(req.WorkflowID)})
	}}); err != nil {
		t.Fatal(err)
	}
	w := snapshot(t, p, ch)[0]
	answer := func(wf string) {
		t.Helper()
		c := open(t, p, ch, w, wf)
		ev, err := c.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind != engine.EventResponse || string(ev.Result.Output.Data) != wf {
			t.Fatalf("conversation of %s received %+v", wf, ev)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 { // reply channels to use again
		answer(fmt.Sprintf("before-%d", i))
	}
	late := open(t, p, ch, w, "late")
	<-started
	if err := late.Close(); err != nil {
		t.Fatal(err)
	}
	close(release)
	for i := range 20 {
		answer(fmt.Sprintf("after-%d", i))
	}
}
