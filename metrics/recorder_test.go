package metrics_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/metrics"
	"github.com/aion-dispatch/dispatch/router"
)

// conversation builds the operations of one conversation as the
// dispatcher records them: each step gets the conversation's ids and
// channel.
type conversation struct {
	ch  engine.ChannelName
	wf  string
	id  string
	ops []engine.Operation
}

func (c *conversation) add(op engine.Operation) *conversation {
	op.Channel, op.WorkflowID, op.ConversationID = c.ch, c.wf, c.id
	c.ops = append(c.ops, op)
	return c
}

func (c *conversation) opened() *conversation {
	return c.add(engine.Operation{Kind: engine.OpConversationOpened, State: engine.StateScheduled,
		Request: engine.ActivityRequest{WorkflowID: c.wf, ActivityType: "charge", TaskQueue: c.ch.TaskQueue(),
			Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"amount":5}`)}}})
}

func (c *conversation) waiting(why string) *conversation {
	return c.add(engine.Operation{Kind: engine.OpActivityWaiting, State: engine.StateScheduled, Message: why})
}

func (c *conversation) selected(worker string, attempt int, waited time.Duration, excluded ...string) *conversation {
	return c.add(engine.Operation{Kind: engine.OpWorkerSelected, WorkerID: worker, State: engine.StateStarted,
		Attempt: attempt, Waited: waited, Excluded: excluded,
		Router:     engine.RouterVersion{Lang: "lua", Hash: "sha256:0123456789abcdef", Source: "least_loaded.lua"},
		Candidates: []engine.ConsumerStateView{{ID: worker, MaxInFlight: 2}}})
}

func (c *conversation) sent(worker string, attempt int) *conversation {
	return c.add(engine.Operation{Kind: engine.OpMessageSent, WorkerID: worker, Attempt: attempt})
}

func (c *conversation) exited(worker string, attempt int) *conversation {
	return c.add(engine.Operation{Kind: engine.OpWorkerExited, WorkerID: worker, State: engine.StateFailed(true),
		Message: "worker exited", Attempt: attempt})
}

func (c *conversation) timedOut(worker string, attempt int) *conversation {
	return c.add(engine.Operation{Kind: engine.OpWorkerTimedOut, WorkerID: worker, State: engine.StateFailed(true),
		Message: "start-to-close timeout", Attempt: attempt})
}

func (c *conversation) answered(worker string, attempt int, res engine.ActivityResult) *conversation {
	state := engine.StateCompleted
	if res.Status == engine.StatusFailed {
		state = engine.StateFailed(false)
	}
	return c.add(engine.Operation{Kind: engine.OpMessageReceived, WorkerID: worker, State: state, Result: res,
		Message: res.Error, Attempt: attempt})
}

func (c *conversation) closed(worker string, attempt int, state engine.ActivityState, res engine.ActivityResult) *conversation {
	return c.add(engine.Operation{Kind: engine.OpConversationClosed, WorkerID: worker, State: state, Result: res,
		Attempt: attempt})
}

// history returns the operations of four conversations on two channels:
//
//   - c1 on payments/charge: w1 exits, re-routed to w2, which completes;
//   - c2 on payments/charge: waits 250ms in the backlog, w2 fails it;
//   - c3 on mail/send: w1 times out;
//   - c4 on payments/charge: w3 does not start it; after 2s in the
//     backlog, w3 again, which completes.
func history(t testing.TB) []engine.Operation {
	charge, mail := channel(t, "payments", "charge"), channel(t, "mail", "send")
	ok := engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("ok")})
	failed := engine.Failed("card declined")
	var ops []engine.Operation
	c := &conversation{ch: charge, wf: "wf-1", id: "c1"}
	c.opened().selected("w1", 1, 0).sent("w1", 1).exited("w1", 1).
		selected("w2", 2, 0, "w1").sent("w2", 2).answered("w2", 2, ok).closed("w2", 2, engine.StateCompleted, ok)
	ops = append(ops, c.ops...)
	c = &conversation{ch: charge, wf: "wf-2", id: "c2"}
	c.opened().waiting("no worker has a free slot").selected("w2", 1, 250*time.Millisecond).sent("w2", 1).
		answered("w2", 1, failed).closed("w2", 1, engine.StateFailed(false), failed)
	ops = append(ops, c.ops...)
	c = &conversation{ch: mail, wf: "wf-3", id: "c3"}
	c.opened().selected("w1", 1, 0).sent("w1", 1).timedOut("w1", 1).
		closed("w1", 1, engine.StateFailed(true), engine.ActivityResult{})
	ops = append(ops, c.ops...)
	c = &conversation{ch: charge, wf: "wf-4", id: "c4"}
	c.opened().selected("w3", 1, 0).waiting("worker w3 did not start it").selected("w3", 2, 2*time.Second).
		sent("w3", 2).answered("w3", 2, ok).closed("w3", 2, engine.StateCompleted, ok)
	return append(ops, c.ops...)
}

func TestRecorderFamilies(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	rec := m.Recorder(nil)
	for _, op := range history(t) {
		if err := rec.Record(t.Context(), op); err != nil {
			t.Fatal(err)
		}
	}
	compare(t, reg, `
dispatch_decisions_total{channel="mail/send",worker="w1"} 1
dispatch_decisions_total{channel="payments/charge",worker="w1"} 1
dispatch_decisions_total{channel="payments/charge",worker="w2"} 2
dispatch_decisions_total{channel="payments/charge",worker="w3"} 2
dispatch_reroutes_total{channel="mail/send"} 0
dispatch_reroutes_total{channel="payments/charge"} 2
dispatch_worker_exits_total{channel="mail/send"} 0
dispatch_worker_exits_total{channel="payments/charge"} 1
dispatch_conversations_total{channel="mail/send",state="completed"} 0
dispatch_conversations_total{channel="mail/send",state="failed"} 1
dispatch_conversations_total{channel="payments/charge",state="completed"} 2
dispatch_conversations_total{channel="payments/charge",state="failed"} 1
`, "dispatch_decisions_total", "dispatch_reroutes_total", "dispatch_worker_exits_total", "dispatch_conversations_total")

	count, sum := histogram(t, reg, "dispatch_backlog_wait_seconds", map[string]string{"channel": "payments/charge"})
	if count != 2 || !near(sum, 2.25) {
		t.Errorf("payments/charge backlog waits: %d summing to %vs; want 2 summing to 2.25s", count, sum)
	}
	count, _ = histogram(t, reg, "dispatch_backlog_wait_seconds", map[string]string{"channel": "mail/send"})
	if count != 0 {
		t.Errorf("mail/send backlog waits: %d, want none", count)
	}
}

// fakeRecorder keeps what it is given and answers as it is told.
type fakeRecorder struct {
	mu  sync.Mutex
	ops []engine.Operation
	err error // what Record returns

	asked     []engine.ActivityRequest
	outcome   engine.RecordedOutcome
	found     bool
	replayErr error
}

func (f *fakeRecorder) Record(_ context.Context, op engine.Operation) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op)
	return f.err
}

func (f *fakeRecorder) ReplayOutcome(_ context.Context, _ engine.ChannelName, req engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, req)
	return f.outcome, f.found, f.replayErr
}

func (f *fakeRecorder) recorded() []engine.Operation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]engine.Operation(nil), f.ops...)
}

// The wrapper hands every operation to next as it got it, and returns
// next's answers, errors included, as they are.
func TestRecorderPassesThrough(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	next := &fakeRecorder{}
	rec := m.Recorder(next)
	ops := history(t)
	for _, op := range ops {
		if err := rec.Record(t.Context(), op); err != nil {
			t.Fatal(err)
		}
	}
	got := next.recorded()
	if !reflect.DeepEqual(got, ops) {
		t.Fatalf("next recorded\n%+v\nwant\n%+v", got, ops)
	}
	if &got[1].Candidates[0] != &ops[1].Candidates[0] {
		t.Error("next got a copy of the candidates, not the dispatcher's slice")
	}

	// next's error is returned as it is, and the operation still counts:
	// the engine did select the worker.
	next.err = errors.New("journal: device full")
	sel := ops[1]
	if err := rec.Record(t.Context(), sel); err != next.err {
		t.Errorf("Record returned %v, want next's error %v", err, next.err)
	}
	compare(t, reg, `
dispatch_decisions_total{channel="mail/send",worker="w1"} 1
dispatch_decisions_total{channel="payments/charge",worker="w1"} 2
dispatch_decisions_total{channel="payments/charge",worker="w2"} 2
dispatch_decisions_total{channel="payments/charge",worker="w3"} 2
`, "dispatch_decisions_total")

	// Replay questions go to next, and its answers come back.
	ch := channel(t, "payments", "charge")
	req := ops[0].Request
	next.outcome = engine.RecordedOutcome{Result: engine.Failed("declined"), Err: engine.ErrActivityFailed}
	next.found = true
	out, found, err := rec.ReplayOutcome(t.Context(), ch, req)
	if !reflect.DeepEqual(out, next.outcome) || !found || err != nil {
		t.Errorf("ReplayOutcome = %+v, %v, %v; want next's %+v, true, nil", out, found, err, next.outcome)
	}
	next.outcome, next.found, next.replayErr = engine.RecordedOutcome{}, false, errors.New("journal: non-determinism")
	out, found, err = rec.ReplayOutcome(t.Context(), ch, req)
	if !reflect.DeepEqual(out, engine.RecordedOutcome{}) || found || err != next.replayErr {
		t.Errorf("ReplayOutcome = %+v, %v, %v; want next's error %v", out, found, err, next.replayErr)
	}
	if len(next.asked) != 2 || !reflect.DeepEqual(next.asked[0], req) {
		t.Errorf("next was asked %+v", next.asked)
	}
}

// Without a next recorder, operations are counted and nothing replays.
func TestRecorderWithoutNext(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	rec := m.Recorder(nil)
	ops := history(t)
	for _, op := range ops {
		if err := rec.Record(t.Context(), op); err != nil {
			t.Fatal(err)
		}
	}
	out, found, err := rec.ReplayOutcome(t.Context(), ops[0].Channel, ops[0].Request)
	if found || err != nil || !reflect.DeepEqual(out, engine.RecordedOutcome{}) {
		t.Errorf("ReplayOutcome without next = %+v, %v, %v; want nothing", out, found, err)
	}
	compare(t, reg, `
dispatch_worker_exits_total{channel="mail/send"} 0
dispatch_worker_exits_total{channel="payments/charge"} 1
`, "dispatch_worker_exits_total")
}

// Once a channel's and a worker's series are resolved, recording an
// operation allocates nothing: the label lookups are cached.
func TestRecordIsCached(t *testing.T) {
	m, _ := newMetrics(t, metrics.Options{})
	rec := m.Recorder(nil)
	ops := history(t)
	for _, op := range ops { // resolve the series
		if err := rec.Record(t.Context(), op); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	allocs := testing.AllocsPerRun(100, func() {
		for _, op := range ops {
			_ = rec.Record(ctx, op)
		}
	})
	if allocs != 0 {
		t.Errorf("recording %d operations allocated %v times; want 0", len(ops), allocs)
	}
}

// The recorder and the router under a real dispatcher, with in-process
// workers: what the engine does shows in the families.
func TestUnderTheDispatcher(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	next := &fakeRecorder{}
	d := echoDispatcher(t, m.Router(router.NewNative("least-loaded", router.LeastLoaded)), m.Recorder(next))
	for _, wf := range []string{"wf-1", "wf-2"} {
		if _, err := d.Dispatch(t.Context(), "payments", engine.ActivityRequest{WorkflowID: wf, ActivityType: "charge", TaskQueue: "charge",
			Input: engine.Payload{ContentType: "text/plain", Data: []byte("5")}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(next.recorded()); n != 10 {
		t.Errorf("next recorded %d operations, want 10", n)
	}
	compare(t, reg, `
dispatch_decisions_total{channel="payments/charge",worker="w1"} 2
dispatch_conversations_total{channel="payments/charge",state="completed"} 2
dispatch_conversations_total{channel="payments/charge",state="failed"} 0
dispatch_script_errors_total{channel="payments/charge",kind="bad_decision"} 0
dispatch_script_errors_total{channel="payments/charge",kind="other"} 0
dispatch_script_errors_total{channel="payments/charge",kind="script_error"} 0
dispatch_script_errors_total{channel="payments/charge",kind="throttled"} 0
dispatch_script_errors_total{channel="payments/charge",kind="timeout"} 0
`, "dispatch_decisions_total", "dispatch_conversations_total", "dispatch_script_errors_total")
	if count, _ := histogram(t, reg, "dispatch_script_duration_seconds",
		map[string]string{"channel": "payments/charge", "lang": "go", "hash": ""}); count != 2 {
		t.Errorf("%d script calls timed, want 2", count)
	}
}

// refusesResults is a recorder that refuses a conversation_closed carrying
// a result (a journal line too long for it, say), as the dispatcher then
// records the close again without it.
type refusesResults struct{ closes int }

func (r *refusesResults) ReplayOutcome(context.Context, engine.ChannelName, engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return engine.RecordedOutcome{}, false, nil
}

func (r *refusesResults) Record(_ context.Context, op engine.Operation) error {
	if op.Kind != engine.OpConversationClosed {
		return nil
	}
	if !op.Result.IsZero() {
		return errors.New("journal: line too long")
	}
	r.closes++
	return nil
}

// A close the next recorder refuses with its result, and that the
// dispatcher records again without it, is counted once, as the journal
// holds it once.
func TestRecorderCountsARecordedAgainCloseOnce(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	next := &refusesResults{}
	d := echoDispatcher(t, router.NewNative("least-loaded", router.LeastLoaded), m.Recorder(next))
	if _, err := d.Dispatch(t.Context(), "payments", engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "charge", TaskQueue: "charge",
		Input: engine.Payload{ContentType: "text/plain", Data: []byte("5")}}); !errors.Is(err, engine.ErrRecord) {
		t.Fatalf("dispatch: %v, want a record error", err)
	}
	if next.closes != 1 {
		t.Fatalf("next holds %d closes, want 1", next.closes)
	}
	compare(t, reg, `
dispatch_conversations_total{channel="payments/charge",state="completed"} 1
dispatch_conversations_total{channel="payments/charge",state="failed"} 0
`, "dispatch_conversations_total")
}

// echoDispatcher is a dispatcher over one in-process worker, w1 on
// payments/charge, that answers each activity with its input.
func echoDispatcher(t *testing.T, r engine.Router, rec engine.Recorder) *engine.Dispatcher {
	t.Helper()
	ch := channel(t, "payments", "charge")
	pool := local.NewPool()
	pool.AddChannel(ch)
	t.Cleanup(func() { _ = pool.Close(context.Background()) })
	if _, err := pool.Start(ch, local.WorkerConfig{ID: "w1", Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(req.Input)
	}}); err != nil {
		t.Fatal(err)
	}
	d, err := engine.NewDispatcher(engine.Options{Pool: pool, Conversations: pool, Capacity: pool,
		Router: r, Recorder: rec, IDs: &engine.SequenceIDs{Prefix: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
