package engine_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
)

func TestDispatchSuccessfulLifecycle(t *testing.T) {
	r := newRig(t)
	w := r.start(t, "w1", echo)
	req := request("wf-1")

	res, err := r.dispatch(context.Background(), req)
	if err != nil {
		t.Fatalf("dispatch: %v", err)
	}
	if res.Status != engine.StatusCompleted || string(res.Output.Data) != string(req.Input.Data) {
		t.Fatalf("result = %+v, want completed echo of the input", res)
	}
	ops := r.rec.all()
	wantKinds := []string{"conversation_opened", "worker_selected", "message_sent", "message_received", "conversation_closed"}
	if got := kinds(ops); !slices.Equal(got, wantKinds) {
		t.Fatalf("kinds = %v, want %v", got, wantKinds)
	}
	wantStates := []engine.ActivityState{engine.StateScheduled, engine.StateStarted, {}, engine.StateCompleted, engine.StateCompleted}
	for i, op := range ops {
		if op.State != wantStates[i] {
			t.Errorf("%s: state %+v, want %+v", op.Kind, op.State, wantStates[i])
		}
		if op.ConversationID != "c1" || op.WorkflowID != "wf-1" || op.Channel != r.channel {
			t.Errorf("%s: ids %q %q %v", op.Kind, op.ConversationID, op.WorkflowID, op.Channel)
		}
	}
	if !reflect.DeepEqual(ops[0].Request, req) {
		t.Errorf("conversation_opened request = %+v, want %+v", ops[0].Request, req)
	}
	sel := ops[1]
	if sel.WorkerID != "w1" || sel.Attempt != 1 || sel.Router.Lang != "go" || len(sel.Candidates) != 1 || sel.Excluded != nil {
		t.Errorf("worker_selected = %+v", sel)
	}
	if ops[3].Result.Status != engine.StatusCompleted {
		t.Errorf("message_received result = %+v", ops[3].Result)
	}
	if n := r.convs.checkClosedOnce(t); n != 1 {
		t.Errorf("opened %d conversations, want 1", n)
	}
	r.checkIdle(t, w)
}

func TestDispatchFailedActivity(t *testing.T) {
	r := newRig(t)
	w := r.start(t, "w1", failWith("smtp refused"))

	res, err := r.dispatch(context.Background(), request("wf-1"))
	if !errors.Is(err, engine.ErrActivityFailed) {
		t.Fatalf("err = %v, want ErrActivityFailed", err)
	}
	var de *engine.DispatchError
	if !errors.As(err, &de) || de.WorkerID != "w1" || de.WorkflowID != "wf-1" || de.Channel != r.channel {
		t.Fatalf("err = %#v, want a DispatchError naming channel, workflow and worker w1", err)
	}
	if !strings.Contains(err.Error(), "smtp refused") {
		t.Errorf("error %q lacks the worker's error text", err)
	}
	if res.Status != engine.StatusFailed || res.Error != "smtp refused" {
		t.Errorf("result = %+v, want Failed(smtp refused)", res)
	}
	received := opsOf(r.rec.all(), engine.OpMessageReceived)
	if len(received) != 1 || received[0].State != engine.StateFailed(false) || received[0].Message != "smtp refused" {
		t.Errorf("message_received = %+v, want failed, retry_eligible false, the error as message", received)
	}
	closed := opsOf(r.rec.all(), engine.OpConversationClosed)
	if len(closed) != 1 || closed[0].State != engine.StateFailed(false) {
		t.Errorf("conversation_closed = %+v", closed)
	}
	r.convs.checkClosedOnce(t)
	r.checkIdle(t, w)
}

func TestDispatchReroutesWhenLinkedWorkerExits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		exit    func(w **local.Worker) local.Handler
		message string
	}{
		{"stop", func(w **local.Worker) local.Handler {
			return func(ctx context.Context, _ engine.ActivityRequest) engine.ActivityResult {
				(*w).Stop("node drained")
				<-ctx.Done()
				return engine.Failed("unreachable")
			}
		}, "node drained"},
		{"panic", func(**local.Worker) local.Handler {
			return func(context.Context, engine.ActivityRequest) engine.ActivityResult { panic("nil map") }
		}, "panic: nil map"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			var first *local.Worker
			first = r.start(t, "w1", tc.exit(&first))
			got := make(chan engine.ActivityRequest, 1)
			second := r.start(t, "w2", func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
				got <- req
				return engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("sent")})
			})
			req := request("wf-1")

			res, err := r.dispatch(context.Background(), req)
			if err != nil {
				t.Fatalf("dispatch: %v", err)
			}
			if string(res.Output.Data) != "sent" {
				t.Fatalf("result = %+v, want w2's answer", res)
			}
			if resent := <-got; !reflect.DeepEqual(resent, req) {
				t.Errorf("w2 got %+v, want the same request %+v", resent, req)
			}
			ops := r.rec.all()
			want := []string{"conversation_opened", "worker_selected", "message_sent", "worker_exited",
				"worker_selected", "message_sent", "message_received", "conversation_closed"}
			if got := kinds(ops); !slices.Equal(got, want) {
				t.Fatalf("kinds = %v, want %v", got, want)
			}
			exited := ops[3]
			if exited.WorkerID != "w1" || exited.State != engine.StateFailed(true) || exited.Message != tc.message {
				t.Errorf("worker_exited = %+v, want w1, failed retry eligible, message %q", exited, tc.message)
			}
			resel := ops[4]
			if resel.WorkerID != "w2" || resel.Attempt != 2 || !slices.Equal(resel.Excluded, []string{"w1"}) {
				t.Errorf("second worker_selected = %+v, want w2, attempt 2, excluded [w1]", resel)
			}
			for _, c := range resel.Candidates {
				if c.ID == "w1" {
					t.Errorf("second selection saw excluded w1 among candidates")
				}
			}
			sels := r.router.selections()
			if len(sels) != 2 || !slices.Equal(sels[1].Excluded, []string{"w1"}) || len(sels[1].Candidates) != 1 {
				t.Errorf("router selections = %+v", sels)
			}
			r.convs.checkClosedOnce(t)
			r.checkIdle(t, first, second)
		})
	}
}

func TestDispatchNoWorkerAfterExit(t *testing.T) {
	r := newRig(t)
	var w *local.Worker
	w = r.start(t, "w1", func(ctx context.Context, _ engine.ActivityRequest) engine.ActivityResult {
		w.Stop("oom killed")
		<-ctx.Done()
		return engine.Failed("unreachable")
	})

	_, err := r.dispatch(context.Background(), request("wf-1"))
	if !errors.Is(err, engine.ErrNoWorkers) {
		t.Fatalf("err = %v, want ErrNoWorkers", err)
	}
	ops := r.rec.all()
	closed := opsOf(ops, engine.OpConversationClosed)
	if len(closed) != 1 || !strings.HasPrefix(closed[0].Message, "NoWorkersAvailable") {
		t.Fatalf("conversation_closed = %+v, want one whose message starts NoWorkersAvailable", closed)
	}
	if n := r.convs.checkClosedOnce(t); n != 1 {
		t.Errorf("opened %d, want 1", n)
	}
	r.checkIdle(t, w)
}

func TestDispatchNoWorkersAtAll(t *testing.T) {
	r := newRig(t)
	_, err := r.dispatch(context.Background(), request("wf-1"))
	if !errors.Is(err, engine.ErrNoWorkers) {
		t.Fatalf("err = %v, want ErrNoWorkers", err)
	}
	if !strings.Contains(err.Error(), "no workers") {
		t.Errorf("error %q should say the channel has no workers", err)
	}
	if len(r.router.selections()) != 0 {
		t.Errorf("router was asked to choose among no candidates")
	}
	r.convs.checkClosedOnce(t)
}

// forbidden fails the test on any call: a replay must not touch the world.
type forbidden struct{ t *testing.T }

func (f forbidden) Workers(context.Context, engine.ChannelName, engine.ActivityRequest) ([]engine.Worker, error) {
	f.t.Error("pool called during replay")
	return nil, nil
}
func (f forbidden) Select(context.Context, engine.Selection) (engine.Decision, error) {
	f.t.Error("router called during replay")
	return engine.Decision{}, nil
}
func (f forbidden) Open(context.Context, string, engine.ChannelName, string) (engine.Conversation, error) {
	f.t.Error("conversation opened during replay")
	return nil, errors.New("forbidden")
}
func (f forbidden) NextConversationID() string {
	f.t.Error("conversation id taken during replay")
	return "x"
}

func TestDispatchReplay(t *testing.T) {
	failedErr := &engine.DispatchError{WorkflowID: "wf-1", WorkerID: "w1", Err: engine.ErrActivityFailed}
	for _, tc := range []struct {
		name    string
		outcome engine.RecordedOutcome
	}{
		{"success", engine.RecordedOutcome{Result: engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("ok")})}},
		{"failure", engine.RecordedOutcome{Result: engine.Failed("smtp refused"), Err: failedErr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &memRecorder{replay: &tc.outcome}
			f := forbidden{t}
			d, err := engine.NewDispatcher(engine.Options{Pool: f, Router: f, Conversations: f, Recorder: rec, IDs: f})
			if err != nil {
				t.Fatal(err)
			}
			res, err := d.Dispatch(context.Background(), testNS, request("wf-1"))
			if !reflect.DeepEqual(res, tc.outcome.Result) || err != tc.outcome.Err {
				t.Errorf("got (%+v, %v), want the recorded (%+v, %v)", res, err, tc.outcome.Result, tc.outcome.Err)
			}
			if ops := rec.all(); len(ops) != 0 {
				t.Errorf("replay recorded %v", kinds(ops))
			}
			if rec.replayCalls.Load() != 1 {
				t.Errorf("ReplayOutcome called %d times", rec.replayCalls.Load())
			}
		})
	}
}

func TestRouterSeesMembershipOfTheMoment(t *testing.T) {
	r := newRig(t)
	w1 := r.start(t, "w1", echo)
	if _, err := r.dispatch(context.Background(), request("wf-1")); err != nil {
		t.Fatal(err)
	}
	w2 := r.start(t, "w2", echo)
	if _, err := r.dispatch(context.Background(), request("wf-2")); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.pool.Remove(r.channel, "w1"); !ok {
		t.Fatal("remove w1")
	}
	if _, err := r.dispatch(context.Background(), request("wf-3")); err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, s := range r.router.selections() {
		var ids []string
		for _, c := range s.Candidates {
			ids = append(ids, c.ID())
		}
		got = append(got, ids)
	}
	want := [][]string{{"w1"}, {"w1", "w2"}, {"w2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("candidates per dispatch = %v, want %v", got, want)
	}
	if n := r.convs.checkClosedOnce(t); n != 3 {
		t.Errorf("opened %d, want 3", n)
	}
	r.checkIdle(t, w1, w2)
}

func TestDispatchClosesWhenRecordingFails(t *testing.T) {
	for _, kind := range []engine.OpKind{
		engine.OpConversationOpened, engine.OpWorkerSelected, engine.OpMessageSent,
		engine.OpMessageReceived, engine.OpConversationClosed,
	} {
		t.Run(kind.String(), func(t *testing.T) {
			r := newRig(t)
			r.rec.failOn = kind
			w := r.start(t, "w1", echo)
			_, err := r.dispatch(context.Background(), request("wf-1"))
			if !errors.Is(err, engine.ErrRecord) || !errors.Is(err, errDisk) {
				t.Fatalf("err = %v, want ErrRecord wrapping the recorder's error", err)
			}
			if !strings.Contains(err.Error(), kind.String()) {
				t.Errorf("error %q does not name the step %s", err, kind)
			}
			if n := r.convs.checkClosedOnce(t); n != 1 {
				t.Errorf("opened %d, want 1", n)
			}
			closed := opsOf(r.rec.all(), engine.OpConversationClosed)
			switch kind {
			case engine.OpConversationOpened: // the journal never heard of it: a close would be illegal there
				if ops := r.rec.all(); len(ops) != 0 {
					t.Errorf("recorded %v for a conversation whose opening was not recorded", kinds(ops))
				}
			case engine.OpConversationClosed:
			default:
				if len(closed) != 1 || !strings.Contains(closed[0].Message, "disk full") {
					t.Errorf("conversation_closed = %+v, want one carrying the record error", closed)
				}
			}
			r.checkIdle(t, w)
		})
	}
}

// TestDispatchClosesWithoutAResultTheRecorderRefuses: a recorder that
// cannot take the worker's answer (a line too long for a journal) refuses
// message_received and the close that carries the same result; the
// conversation is still closed, without the result, saying why.
func TestDispatchClosesWithoutAResultTheRecorderRefuses(t *testing.T) {
	r := newRig(t)
	errTooLong := errors.New("line too long")
	r.rec.before = func(_ context.Context, op engine.Operation) error {
		if !op.Result.IsZero() {
			return errTooLong
		}
		return nil
	}
	w := r.start(t, "w1", echo)
	_, err := r.dispatch(context.Background(), request("wf-1"))
	if !errors.Is(err, engine.ErrRecord) || !errors.Is(err, errTooLong) {
		t.Fatalf("err = %v, want ErrRecord wrapping the recorder's error", err)
	}
	want := []string{"conversation_opened", "worker_selected", "message_sent", "conversation_closed"}
	ops := r.rec.all()
	if got := kinds(ops); !slices.Equal(got, want) {
		t.Fatalf("kinds = %v, want %v", got, want)
	}
	if c := ops[3]; !c.Result.IsZero() || !strings.Contains(c.Message, "message_received") || !strings.Contains(c.Message, "line too long") {
		t.Errorf("conversation_closed = %+v, want no result and the record error", c)
	}
	r.convs.checkClosedOnce(t)
	r.checkIdle(t, w)
}

func TestDispatchRecordingWorkerExitedFails(t *testing.T) {
	r := newRig(t)
	r.rec.failOn = engine.OpWorkerExited
	var w *local.Worker
	w = r.start(t, "w1", func(ctx context.Context, _ engine.ActivityRequest) engine.ActivityResult {
		w.Stop("gone")
		<-ctx.Done()
		return engine.Failed("unreachable")
	})
	w2 := r.start(t, "w2", echo)
	_, err := r.dispatch(context.Background(), request("wf-1"))
	if !errors.Is(err, engine.ErrRecord) {
		t.Fatalf("err = %v, want ErrRecord", err)
	}
	if n := len(r.router.selections()); n != 1 {
		t.Errorf("router asked %d times; a failed record must stop the conversation", n)
	}
	r.convs.checkClosedOnce(t)
	r.checkIdle(t, w, w2)
}

func TestDispatchCloseError(t *testing.T) {
	errClose := errors.New("broken pipe")
	t.Run("alone", func(t *testing.T) {
		r := newRig(t)
		r.convs.closeErr = errClose
		w := r.start(t, "w1", echo)
		res, err := r.dispatch(context.Background(), request("wf-1"))
		if !errors.Is(err, errClose) {
			t.Fatalf("err = %v, want the close error", err)
		}
		if res.Status != engine.StatusCompleted {
			t.Errorf("result = %+v, want the completed result alongside the close error", res)
		}
		closed := opsOf(r.rec.all(), engine.OpConversationClosed)
		if len(closed) != 1 || !strings.Contains(closed[0].Message, "broken pipe") {
			t.Errorf("conversation_closed = %+v", closed)
		}
		r.convs.checkClosedOnce(t)
		r.checkIdle(t, w)
	})
	t.Run("joined", func(t *testing.T) {
		r := newRig(t)
		r.convs.closeErr = errClose
		w := r.start(t, "w1", failWith("smtp refused"))
		_, err := r.dispatch(context.Background(), request("wf-1"))
		if !errors.Is(err, errClose) || !errors.Is(err, engine.ErrActivityFailed) {
			t.Fatalf("err = %v, want both the activity failure and the close error", err)
		}
		r.convs.checkClosedOnce(t)
		r.checkIdle(t, w)
	})
}

func TestDispatchTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		req      func(engine.ActivityRequest) engine.ActivityRequest
		sentinel error
	}{
		{"start-to-close", func(r engine.ActivityRequest) engine.ActivityRequest {
			r.StartToClose = 20 * time.Millisecond
			return r
		}, engine.ErrStartToCloseTimeout},
		{"schedule-to-close", func(r engine.ActivityRequest) engine.ActivityRequest {
			r.ScheduleToClose = 20 * time.Millisecond
			r.StartToClose = time.Hour
			return r
		}, engine.ErrScheduleToCloseTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			started := make(chan string, 1)
			w := r.start(t, "w1", hang(started, "w1"))
			_, err := r.dispatch(context.Background(), tc.req(request("wf-1")))
			if !errors.Is(err, tc.sentinel) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want %v", err, tc.sentinel)
			}
			var te *engine.TimeoutError
			if !errors.As(err, &te) || te.After != 20*time.Millisecond {
				t.Errorf("err = %v, want a TimeoutError after 20ms", err)
			}
			if !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error %q does not say which timeout fired", err)
			}
			ops := r.rec.all()
			want := []string{"conversation_opened", "worker_selected", "message_sent", "worker_timed_out", "conversation_closed"}
			if got := kinds(ops); !slices.Equal(got, want) {
				t.Fatalf("kinds = %v, want %v", got, want)
			}
			if to := ops[3]; to.WorkerID != "w1" || to.State != engine.StateFailed(true) || to.Attempt != 1 {
				t.Errorf("worker_timed_out = %+v", to)
			}
			r.convs.checkClosedOnce(t)
			r.checkIdle(t, w)
		})
	}
}

func TestDispatchContextCancel(t *testing.T) {
	r := newRig(t)
	started := make(chan string, 1)
	w := r.start(t, "w1", hang(started, "w1"))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	_, err := r.dispatch(ctx, request("wf-1"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if errors.Is(err, engine.ErrStartToCloseTimeout) || errors.Is(err, engine.ErrScheduleToCloseTimeout) {
		t.Errorf("a cancellation was reported as a timeout: %v", err)
	}
	if n := len(opsOf(r.rec.all(), engine.OpWorkerTimedOut)); n != 0 {
		t.Errorf("recorded %d worker_timed_out for a cancellation", n)
	}
	r.convs.checkClosedOnce(t)
	r.checkIdle(t, w)
}

// TestDispatchKeepsAnAnswerWhileRecordingIt: the worker answered, and the
// caller's context ends while the answer is being recorded (a journal
// waiting for a slow disk). The answer is a fact: it is recorded whatever
// the context, and the dispatch returns it rather than a cancellation.
func TestDispatchKeepsAnAnswerWhileRecordingIt(t *testing.T) {
	r := newRig(t)
	w := r.start(t, "w1", echo)
	ctx, cancel := context.WithCancel(context.Background())
	r.rec.before = func(rctx context.Context, op engine.Operation) error {
		if op.Kind != engine.OpMessageReceived {
			return nil
		}
		cancel()          // the context ends while the record waits…
		return rctx.Err() // …and a recorder that honours it gives up
	}
	res, err := r.dispatch(ctx, request("wf-1"))
	if err != nil || res.Status != engine.StatusCompleted {
		t.Fatalf("dispatch = %+v, %v; want the completed answer", res, err)
	}
	want := []string{"conversation_opened", "worker_selected", "message_sent", "message_received", "conversation_closed"}
	if got := kinds(r.rec.all()); !slices.Equal(got, want) {
		t.Fatalf("kinds = %v, want %v", got, want)
	}
	r.convs.checkClosedOnce(t)
	r.checkIdle(t, w)
}

func TestDispatchAlreadyCancelled(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.dispatch(ctx, request("wf-1"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := r.convs.checkClosedOnce(t); n != 0 {
		t.Errorf("opened %d conversations for a cancelled context", n)
	}
}

func TestDispatchInvalidChannel(t *testing.T) {
	r := newRig(t)
	_, err := r.d.Dispatch(context.Background(), "prod", onQueue(request("wf-1"), "e.mail"))
	if !errors.Is(err, engine.ErrInvalidChannel) {
		t.Fatalf("err = %v, want ErrInvalidChannel", err)
	}
	var ce *engine.ChannelNameError
	if !errors.As(err, &ce) || ce.Part != "task queue" {
		t.Errorf("err = %v, want a ChannelNameError naming the task queue", err)
	}
	if n := r.rec.replayCalls.Load(); n != 0 {
		t.Errorf("recorder asked for a replay of an invalid channel")
	}
}

func TestDispatchUnknownChannel(t *testing.T) {
	r := newRig(t)
	_, err := r.d.Dispatch(context.Background(), "prod", onQueue(request("wf-1"), "sms"))
	if !errors.Is(err, engine.ErrUnknownChannel) {
		t.Fatalf("err = %v, want ErrUnknownChannel", err)
	}
	r.convs.checkClosedOnce(t)
}

// badRouter returns a fixed decision.
type badRouter struct{ decision engine.Decision }

func (b badRouter) Select(context.Context, engine.Selection) (engine.Decision, error) {
	return b.decision, nil
}

func TestDispatchRouterChoosesNonCandidate(t *testing.T) {
	r := newRig(t)
	w := r.start(t, "w1", echo)
	r.router.inner = badRouter{engine.Decision{WorkerID: "w9", Version: engine.RouterVersion{Lang: "lua", Source: "bad.lua"}}}
	_, err := r.dispatch(context.Background(), request("wf-1"))
	if !errors.Is(err, engine.ErrRouting) {
		t.Fatalf("err = %v, want ErrRouting", err)
	}
	for _, want := range []string{`"w9"`, "bad.lua", "w1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	r.convs.checkClosedOnce(t)
	r.checkIdle(t, w)
	// The close names the version that failed: it has no worker_selected
	// line that would.
	r.rec.mu.Lock()
	last := r.rec.ops[len(r.rec.ops)-1]
	r.rec.mu.Unlock()
	if last.Kind != engine.OpConversationClosed || last.Router != (engine.RouterVersion{Lang: "lua", Source: "bad.lua"}) {
		t.Errorf("last operation %s with router %+v, want conversation_closed naming bad.lua", last.Kind, last.Router)
	}
}

func TestDispatchRouterChoosesNone(t *testing.T) {
	r := newRig(t)
	w := r.start(t, "w1", echo)
	r.router.inner = badRouter{}
	_, err := r.dispatch(context.Background(), request("wf-1"))
	if !errors.Is(err, engine.ErrNoWorkers) {
		t.Fatalf("err = %v, want ErrNoWorkers", err)
	}
	r.convs.checkClosedOnce(t)
	r.checkIdle(t, w)
}

func TestNewDispatcherNamesMissingOptions(t *testing.T) {
	_, err := engine.NewDispatcher(engine.Options{})
	if err == nil || !strings.Contains(err.Error(), "Pool, Router, Conversations") {
		t.Errorf("err = %v, want one naming Pool, Router, Conversations", err)
	}
}

func TestDispatchWithoutRecorder(t *testing.T) {
	pool := local.NewPool()
	t.Cleanup(func() { _ = pool.Close(context.Background()) })
	ch, _ := engine.DispatchChannel(testNS, testQueue)
	if _, err := pool.Start(ch, local.WorkerConfig{ID: "w1", Handler: echo}); err != nil {
		t.Fatal(err)
	}
	d, err := engine.NewDispatcher(engine.Options{Pool: pool, Router: badRouter{engine.Decision{WorkerID: "w1"}}, Conversations: pool})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Dispatch(context.Background(), testNS, request("wf-1")); err != nil {
		t.Fatal(err)
	}
}

func TestDispatchFailedActivityWhenRecordingFails(t *testing.T) {
	r := newRig(t)
	r.rec.failOn = engine.OpMessageReceived
	w := r.start(t, "w1", failWith("smtp refused"))
	_, err := r.dispatch(context.Background(), request("wf-1"))
	if !errors.Is(err, engine.ErrActivityFailed) || !errors.Is(err, engine.ErrRecord) {
		t.Fatalf("err = %v, want both the activity failure and the record error", err)
	}
	r.convs.checkClosedOnce(t)
	r.checkIdle(t, w)
}

// panicRouter panics on every selection.
type panicRouter struct{}

func (panicRouter) Select(context.Context, engine.Selection) (engine.Decision, error) {
	panic("router bug")
}

func TestDispatchContainsPanics(t *testing.T) {
	r := newRig(t)
	w := r.start(t, "w1", echo)
	r.router.inner = panicRouter{}
	_, err := r.dispatch(context.Background(), request("wf-1"))
	if !errors.Is(err, engine.ErrPanic) || !strings.Contains(err.Error(), "router bug") {
		t.Fatalf("err = %v, want ErrPanic naming the panic", err)
	}
	if n := r.convs.checkClosedOnce(t); n != 1 {
		t.Errorf("opened %d, want 1", n)
	}
	r.checkIdle(t, w)
}

// lateConversation answers with an event from another attempt's worker.
type lateConversation struct{ engine.Conversation }

func (lateConversation) Receive(context.Context) (engine.Event, error) {
	return engine.Event{Kind: engine.EventResponse, WorkerID: "w0", Attempt: 7, Result: engine.Completed(engine.Payload{})}, nil
}

type lateFactory struct{ engine.ConversationFactory }

func (f lateFactory) Open(ctx context.Context, wf string, ch engine.ChannelName, id string) (engine.Conversation, error) {
	c, err := f.ConversationFactory.Open(ctx, wf, ch, id)
	return lateConversation{c}, err
}

func TestDispatchRejectsAnEventOfAnotherAttempt(t *testing.T) {
	r := newRig(t)
	w := r.start(t, "w1", echo)
	r.convs.inner = lateFactory{r.pool}
	_, err := r.dispatch(context.Background(), request("wf-1"))
	if err == nil || !strings.Contains(err.Error(), "an event of worker w0, attempt 7, during attempt 1 with worker w1") {
		t.Fatalf("err = %v", err)
	}
	r.convs.checkClosedOnce(t)
	r.checkIdle(t, w)
}

// onQueue returns req for the task queue q.
func onQueue(req engine.ActivityRequest, q string) engine.ActivityRequest {
	req.TaskQueue = q
	return req
}
