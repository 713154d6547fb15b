package transporttest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// Guard bounds every wait of the suite for something that should happen
// soon. It only turns a hang into a failure: no case depends on it.
const Guard = 15 * time.Second

// fixture is one case's dispatcher over a fresh harness.
type fixture struct {
	t     *testing.T
	h     Harness
	tr    Transport
	ch    engine.ChannelName
	d     *engine.Dispatcher
	rec   *recorder
	convs *counting

	ctx    context.Context // the dispatches'; cancelled when the case ends
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newFixture(t *testing.T, newHarness func(t *testing.T) Harness) *fixture {
	t.Helper()
	h := newHarness(t)
	f := &fixture{t: t, h: h, tr: h.Transport(), ch: h.Channel(), rec: newRecorder(), convs: &counting{closes: map[string]int{}}}
	f.convs.inner = f.tr
	d, err := engine.NewDispatcher(engine.Options{Pool: f.tr, Router: firstFree{}, Conversations: f.convs,
		Recorder: f.rec, Capacity: f.tr})
	if err != nil {
		t.Fatal(err)
	}
	f.d = d
	f.ctx, f.cancel = context.WithCancel(context.Background())
	// Registered after the harness's own cleanups, so it runs before them:
	// every dispatch has returned before the transport closes.
	t.Cleanup(func() {
		f.cancel()
		f.wg.Wait()
		f.convs.check(t)
	})
	return f
}

// firstFree is the suite's router: the first candidate in pool order with
// a free slot, or none.
type firstFree struct{}

// Select implements [engine.Router].
func (firstFree) Select(_ context.Context, in engine.Selection) (engine.Decision, error) {
	v := engine.RouterVersion{Lang: "go", Source: "first-free"}
	for _, c := range in.Candidates {
		if c.State.HasCapacity() && !slices.Contains(in.Excluded, c.ID()) {
			return engine.Decision{WorkerID: c.ID(), Version: v}, nil
		}
	}
	return engine.Decision{Version: v}, nil
}

// outcome is what one Dispatch returned.
type outcome struct {
	res engine.ActivityResult
	err error
}

// dispatch starts a Dispatch of req on its own goroutine, which ends when
// Dispatch returns (at the latest when the case ends and f.ctx, which ctx
// must derive from, is cancelled).
func (f *fixture) dispatch(ctx context.Context, req engine.ActivityRequest) <-chan outcome {
	out := make(chan outcome, 1)
	ns := f.ch.Namespace()
	f.wg.Go(func() {
		res, err := f.d.Dispatch(ctx, ns, req)
		out <- outcome{res, err}
	})
	return out
}

// wait waits for a dispatch's outcome.
func (f *fixture) wait(out <-chan outcome, what string) outcome {
	f.t.Helper()
	select {
	case o := <-out:
		return o
	case <-time.After(Guard):
		f.t.Fatalf("%s: the dispatch did not end", what)
		return outcome{}
	}
}

// start starts a worker and waits until the snapshot shows it.
func (f *fixture) start(cfg WorkerConfig) Worker {
	f.t.Helper()
	w := f.h.StartWorker(f.t, cfg)
	f.until("worker "+cfg.ID+" in the snapshot", func() bool { return slices.Contains(f.live(), cfg.ID) })
	return w
}

// stop stops w gracefully and waits until it left the membership.
func (f *fixture) stop(w Worker) {
	f.t.Helper()
	w.Stop(f.t)
	f.until("worker "+w.ID()+" to leave the membership", func() bool { return !slices.Contains(f.tr.Members(f.ch), w.ID()) })
}

// leave makes a killed worker leave and waits until it did.
func (f *fixture) leave(w Worker) {
	f.t.Helper()
	w.Leave(f.t)
	f.until("worker "+w.ID()+" to leave the membership", func() bool { return !slices.Contains(f.tr.Members(f.ch), w.ID()) })
}

// until waits, on the channel's capacity signal, until cond holds.
func (f *fixture) until(what string, cond func() bool) {
	f.t.Helper()
	guard := time.NewTimer(Guard)
	defer guard.Stop()
	for {
		changed := f.tr.CapacityChanged(f.ch)
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-guard.C:
			f.t.Fatalf("timed out waiting for %s (snapshot %+v, members %v)", what, f.snapshot(), f.tr.Members(f.ch))
		}
	}
}

// snapshot returns the channel's workers now.
func (f *fixture) snapshot() []engine.ConsumerStateView {
	ws, err := f.tr.Workers(context.Background(), f.ch, engine.ActivityRequest{})
	if err != nil {
		f.t.Fatalf("snapshot of %s: %v", f.ch.Short(), err)
	}
	out := make([]engine.ConsumerStateView, len(ws))
	for i, w := range ws {
		out[i] = w.State
	}
	return out
}

// live returns the ids in the channel's snapshot.
func (f *fixture) live() []string {
	var ids []string
	for _, s := range f.snapshot() {
		ids = append(ids, s.ID)
	}
	return ids
}

// idle waits, on the capacity signal, until no worker of the snapshot
// holds a slot: every slot came back.
func (f *fixture) idle() {
	f.t.Helper()
	f.until("every slot to come back", func() bool {
		for _, s := range f.snapshot() {
			if s.InFlight != 0 || s.BufferDepth != 0 {
				return false
			}
		}
		return true
	})
}

// recv waits for a value on c.
func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(Guard):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// recorder keeps every operation and tells whoever waits when one comes.
type recorder struct {
	mu      sync.Mutex
	ops     []engine.Operation
	changed chan struct{} // closed at the next Record
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

// ReplayOutcome implements [engine.Recorder]: every dispatch is live.
func (r *recorder) ReplayOutcome(context.Context, engine.ChannelName, engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return engine.RecordedOutcome{}, false, nil
}

// Record implements [engine.Recorder].
func (r *recorder) Record(_ context.Context, op engine.Operation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
	close(r.changed)
	r.changed = make(chan struct{})
	return nil
}

// of returns the operations of workflow wf so far.
func (r *recorder) of(wf string) []engine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []engine.Operation
	for _, op := range r.ops {
		if op.WorkflowID == wf {
			out = append(out, op)
		}
	}
	return out
}

// count returns how many operations so far satisfy match.
func (r *recorder) count(match func(engine.Operation) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, op := range r.ops {
		if match(op) {
			n++
		}
	}
	return n
}

// await waits until at least n operations satisfy match.
func (r *recorder) await(t *testing.T, what string, n int, match func(engine.Operation) bool) {
	t.Helper()
	guard := time.NewTimer(Guard)
	defer guard.Stop()
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if r.count(match) >= n {
			return
		}
		select {
		case <-changed:
		case <-guard.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// kinds returns the kinds of ops, for messages and comparisons.
func kinds(ops []engine.Operation) []string {
	out := make([]string, len(ops))
	for i, op := range ops {
		out[i] = op.Kind.String()
		if op.WorkerID != "" {
			out[i] += "(" + op.WorkerID + ")"
		}
	}
	return out
}

// is returns a matcher of operations of workflow wf of kind k.
func is(wf string, k engine.OpKind) func(engine.Operation) bool {
	return func(op engine.Operation) bool { return op.WorkflowID == wf && op.Kind == k }
}

// counting is a conversation factory that counts every Open and every
// Close of the transport's conversations.
type counting struct {
	inner engine.ConversationFactory
	mu    sync.Mutex
	opens int
	// closes counts Close calls by conversation id.
	closes map[string]int
	errs   []error
}

// Open implements [engine.ConversationFactory].
func (c *counting) Open(ctx context.Context, wf string, ch engine.ChannelName, id string) (engine.Conversation, error) {
	conv, err := c.inner.Open(ctx, wf, ch, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opens++
	if _, dup := c.closes[id]; dup {
		c.errs = append(c.errs, fmt.Errorf("conversation %s opened twice", id))
	}
	c.closes[id] = 0
	return &counted{Conversation: conv, c: c, id: id}, nil
}

// check fails t unless every conversation opened was closed exactly once.
func (c *counting) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.closes {
		if n != 1 {
			c.errs = append(c.errs, fmt.Errorf("conversation %s closed %d times, want once", id, n))
		}
	}
	if err := errors.Join(c.errs...); err != nil {
		t.Error(err)
	}
}

// counted is one conversation whose Close calls are counted.
type counted struct {
	engine.Conversation
	c  *counting
	id string
}

// Close implements [engine.Conversation].
func (cv *counted) Close() error {
	cv.c.mu.Lock()
	cv.c.closes[cv.id]++
	cv.c.mu.Unlock()
	return cv.Conversation.Close()
}
