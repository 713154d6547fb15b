package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

// rejectingFactory opens conversations over a local pool whose first
// reject sends fail with ErrNotStarted, as a remote worker's rejected ack
// does: the slot Link took is freed first (by closing the inner
// conversation and opening a fresh one).
type rejectingFactory struct {
	pool   *local.Pool
	mu     sync.Mutex
	reject int // sends left to reject
}

func (f *rejectingFactory) Open(ctx context.Context, wf string, ch engine.ChannelName, id string) (engine.Conversation, error) {
	c, err := f.pool.Open(ctx, wf, ch, id)
	if err != nil {
		return nil, err
	}
	return &rejectingConv{f: f, inner: c, wf: wf, ch: ch, id: id}, nil
}

type rejectingConv struct {
	f     *rejectingFactory
	inner engine.Conversation
	wf    string
	ch    engine.ChannelName
	id    string
	w     string
}

func (c *rejectingConv) Link(ctx context.Context, w engine.Worker) error {
	c.w = w.ID()
	return c.inner.Link(ctx, w)
}

func (c *rejectingConv) Send(ctx context.Context, msg engine.DispatchRequest) error {
	c.f.mu.Lock()
	reject := c.f.reject > 0
	if reject {
		c.f.reject--
	}
	c.f.mu.Unlock()
	if !reject {
		return c.inner.Send(ctx, msg)
	}
	// Free the slot, as a transport does when its worker rejects.
	if err := c.inner.Close(); err != nil {
		return err
	}
	fresh, err := c.f.pool.Open(ctx, c.wf, c.ch, c.id)
	if err != nil {
		return err
	}
	c.inner = fresh
	return fmt.Errorf("worker %s rejected conversation %s attempt %d: full: %w", c.w, c.id, msg.Attempt, engine.ErrNotStarted)
}

func (c *rejectingConv) Receive(ctx context.Context) (engine.Event, error) {
	return c.inner.Receive(ctx)
}
func (c *rejectingConv) Close() error { return c.inner.Close() }

// A worker that does not start an activity sends it back to the backlog:
// it is routed again, to the same worker if the router says so (it is not
// excluded, and it is the channel's only member), and the journal shows
// worker_selected, activity_waiting, worker_selected.
func TestNotStartedGoesBackToTheBacklog(t *testing.T) {
	ch, _ := engine.DispatchChannel(testNS, testQueue)
	pool := local.NewPool()
	t.Cleanup(func() { _ = pool.Close(context.Background()) })
	if _, err := pool.Start(ch, local.WorkerConfig{ID: "w1", Handler: echo}); err != nil {
		t.Fatal(err)
	}
	f := &rejectingFactory{pool: pool, reject: 2}
	rec := &memRecorder{}
	rr := &recordingRouter{inner: router.NewNative("least-loaded", router.LeastLoaded)}
	d, err := engine.NewDispatcher(engine.Options{Pool: pool, Router: rr, Conversations: f, Recorder: rec, Capacity: pool,
		IDs: &engine.SequenceIDs{Prefix: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Dispatch(t.Context(), testNS, request("wf-1"))
	if err != nil || res.Status != engine.StatusCompleted {
		t.Fatalf("dispatch: %+v, %v", res, err)
	}
	ops := rec.all()
	want := []string{"conversation_opened", "worker_selected", "activity_waiting", "worker_selected", "activity_waiting",
		"worker_selected", "message_sent", "message_received", "conversation_closed"}
	if got := kinds(ops); !slices.Equal(got, want) {
		t.Fatalf("journal %v, want %v", got, want)
	}
	check := journal.NewChecker()
	for i, op := range ops {
		op.Seq = uint64(i + 1)
		if p := check.Add(i+1, op); len(p) > 0 {
			t.Errorf("journal check: %v", p)
		}
	}
	for i, op := range opsOf(ops, engine.OpWorkerSelected) {
		if op.Attempt != i+1 || op.WorkerID != "w1" || len(op.Excluded) != 0 {
			t.Errorf("selection %d: attempt %d worker %s excluded %v", i, op.Attempt, op.WorkerID, op.Excluded)
		}
	}
	for _, op := range opsOf(ops, engine.OpActivityWaiting) {
		if !strings.Contains(op.Message, "worker w1 rejected") || strings.HasPrefix(op.Message, engine.ErrNoWorkers.Error()) {
			t.Errorf("wait message %q", op.Message)
		}
	}
	for _, s := range rr.selections() {
		if len(s.Excluded) != 0 {
			t.Errorf("router saw excluded %v", s.Excluded)
		}
	}
}

// A channel that fails when full fails an activity its worker did not
// start with NoWorkersAvailable, naming the worker's reason.
func TestNotStartedFailsWhenFull(t *testing.T) {
	ch, _ := engine.DispatchChannel(testNS, testQueue)
	pool := local.NewPool()
	t.Cleanup(func() { _ = pool.Close(context.Background()) })
	if _, err := pool.Start(ch, local.WorkerConfig{ID: "w1", Handler: echo}); err != nil {
		t.Fatal(err)
	}
	convs := newCountingFactory(&rejectingFactory{pool: pool, reject: 1})
	d, err := engine.NewDispatcher(engine.Options{Pool: pool, Router: router.NewNative("least-loaded", router.LeastLoaded),
		Conversations: convs, Capacity: pool, Backlog: func(engine.ChannelName) engine.BacklogPolicy { return engine.BacklogPolicy{FailWhenFull: true} }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Dispatch(t.Context(), testNS, request("wf-1"))
	if !errors.Is(err, engine.ErrNoWorkers) || !errors.Is(err, engine.ErrNotStarted) || !strings.Contains(err.Error(), "worker w1 rejected") {
		t.Fatalf("dispatch: %v", err)
	}
	convs.checkClosedOnce(t)
}
