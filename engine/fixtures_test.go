package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

// memRecorder keeps every operation in memory and can fail on one kind.
type memRecorder struct {
	mu     sync.Mutex
	ops    []engine.Operation
	failOn engine.OpKind // Record fails for this kind (0: never)
	// replay, when set, answers ReplayOutcome.
	replay      *engine.RecordedOutcome
	replayCalls atomic.Int32
	// before, when set, runs first in Record; its error is Record's.
	before func(ctx context.Context, op engine.Operation) error
}

var errDisk = errors.New("disk full")

func (r *memRecorder) ReplayOutcome(context.Context, engine.ChannelName, engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	r.replayCalls.Add(1)
	if r.replay != nil {
		return *r.replay, true, nil
	}
	return engine.RecordedOutcome{}, false, nil
}

func (r *memRecorder) Record(ctx context.Context, op engine.Operation) error {
	if r.before != nil {
		if err := r.before(ctx, op); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if op.Kind == r.failOn {
		return errDisk
	}
	r.ops = append(r.ops, op)
	return nil
}

func (r *memRecorder) all() []engine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

// kinds returns the kinds recorded, as journal names.
func kinds(ops []engine.Operation) []string {
	out := make([]string, len(ops))
	for i, op := range ops {
		out[i] = op.Kind.String()
	}
	return out
}

func opsOf(ops []engine.Operation, kind engine.OpKind) []engine.Operation {
	var out []engine.Operation
	for _, op := range ops {
		if op.Kind == kind {
			out = append(out, op)
		}
	}
	return out
}

// countingFactory wraps a factory and counts opens and closes per conversation.
type countingFactory struct {
	inner  engine.ConversationFactory
	mu     sync.Mutex
	closes map[string]int // conversation id → Close calls
	// closeErr, when set, is returned by every Close after the inner close.
	closeErr error
}

func newCountingFactory(inner engine.ConversationFactory) *countingFactory {
	return &countingFactory{inner: inner, closes: make(map[string]int)}
}

func (f *countingFactory) Open(ctx context.Context, wf string, ch engine.ChannelName, id string) (engine.Conversation, error) {
	c, err := f.inner.Open(ctx, wf, ch, id)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.closes[id] = 0
	f.mu.Unlock()
	return &countingConversation{Conversation: c, f: f, id: id}, nil
}

// checkClosedOnce fails the test unless every opened conversation was closed
// exactly once; it returns how many were opened.
func (f *countingFactory) checkClosedOnce(t *testing.T) int {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, n := range f.closes {
		if n != 1 {
			t.Errorf("conversation %s closed %d times, want 1", id, n)
		}
	}
	return len(f.closes)
}

type countingConversation struct {
	engine.Conversation
	f  *countingFactory
	id string
}

func (c *countingConversation) Close() error {
	c.f.mu.Lock()
	c.f.closes[c.id]++
	c.f.mu.Unlock()
	return errors.Join(c.Conversation.Close(), c.f.closeErr)
}

// recordingRouter wraps a router and keeps every selection it was given.
type recordingRouter struct {
	inner engine.Router
	mu    sync.Mutex
	seen  []engine.Selection
}

func (r *recordingRouter) Select(ctx context.Context, in engine.Selection) (engine.Decision, error) {
	r.mu.Lock()
	r.seen = append(r.seen, in)
	r.mu.Unlock()
	return r.inner.Select(ctx, in)
}

func (r *recordingRouter) selections() []engine.Selection {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// rig is a dispatcher over in-process workers with every seam observable.
type rig struct {
	pool    *local.Pool
	convs   *countingFactory
	router  *recordingRouter
	rec     *memRecorder
	d       *engine.Dispatcher
	channel engine.ChannelName
}

const (
	testNS    = "prod"
	testQueue = "email"
)

func newRig(t *testing.T) *rig {
	t.Helper()
	ch, err := engine.DispatchChannel(testNS, testQueue)
	if err != nil {
		t.Fatal(err)
	}
	pool := local.NewPool()
	pool.AddChannel(ch)
	t.Cleanup(func() {
		if err := pool.Close(context.Background()); err != nil {
			t.Errorf("close pool: %v", err)
		}
	})
	r := &rig{
		pool:    pool,
		convs:   newCountingFactory(pool),
		router:  &recordingRouter{inner: router.NewNative("least-loaded", router.LeastLoaded)},
		rec:     &memRecorder{},
		channel: ch,
	}
	r.d, err = engine.NewDispatcher(engine.Options{
		Pool: pool, Router: r.router, Conversations: r.convs, Recorder: r.rec,
		IDs: &engine.SequenceIDs{Prefix: "c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// start adds a worker with the given handler to the rig's channel.
func (r *rig) start(t *testing.T, id string, h local.Handler) *local.Worker {
	t.Helper()
	w, err := r.pool.Start(r.channel, local.WorkerConfig{ID: id, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (r *rig) dispatch(ctx context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
	return r.d.Dispatch(ctx, testNS, req)
}

func request(wf string) engine.ActivityRequest {
	return engine.ActivityRequest{
		WorkflowID:   wf,
		ActivityType: "send-email",
		TaskQueue:    testQueue,
		Input:        engine.Payload{ContentType: "application/json", Data: []byte(`{"to":"a@example.com"}`)},
	}
}

// echo completes with the input as output.
func echo(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
	return engine.Completed(req.Input)
}

// failWith answers Failed with msg.
func failWith(msg string) local.Handler {
	return func(context.Context, engine.ActivityRequest) engine.ActivityResult { return engine.Failed(msg) }
}

// hang blocks until its context ends, and tells started when it begins.
func hang(started chan<- string, id string) local.Handler {
	return func(ctx context.Context, _ engine.ActivityRequest) engine.ActivityResult {
		if started != nil {
			started <- id
		}
		<-ctx.Done()
		return engine.Failed(fmt.Sprint("cancelled: ", context.Cause(ctx)))
	}
}

// waitIdle waits until every worker of the rig has stopped and checks that
// none still counts an activity in flight.
func (r *rig) checkIdle(t *testing.T, ws ...*local.Worker) {
	t.Helper()
	for _, w := range ws {
		w.Stop("test over")
		if err := w.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s := w.State(); s.InFlight != 0 {
			t.Errorf("worker %s: in flight %d after stop, want 0", w.ID(), s.InFlight)
		}
	}
}
