package scenario

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/broadcast"
)

// The replay step fails when an outcome is not the recorded one, or when
// answering it would need a live call.
func TestReplayCatchesDifferences(t *testing.T) {
	ch, err := engine.DispatchChannel("prod", "email")
	if err != nil {
		t.Fatal(err)
	}
	req := engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "send", TaskQueue: "email"}
	done := []outcome{{req: Request{Channel: ch, Request: req}, res: engine.Completed(engine.Payload{Data: []byte("sent")})}}
	recorded := func(data string) []engine.Operation {
		base := engine.Operation{WorkflowID: "wf-1", ConversationID: "c1", Channel: ch}
		opened, closed := base, base
		opened.Seq, opened.Kind, opened.State, opened.Request = 1, engine.OpConversationOpened, engine.StateScheduled, req
		closed.Seq, closed.Kind, closed.State, closed.WorkerID = 2, engine.OpConversationClosed, engine.StateCompleted, "w1"
		closed.Result = engine.Completed(engine.Payload{Data: []byte(data)})
		return []engine.Operation{opened, closed}
	}
	for _, tc := range []struct {
		name string
		ops  []engine.Operation
		want string
	}{
		{"same", recorded("sent"), ""},
		{"different outcome", recorded("lost"), "request 1 (workflow wf-1): replayed"},
		{"nothing recorded: a live call", nil, "request 1 (workflow wf-1): replayed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &runner{done: done}
			r.rec.all = tc.ops
			err := r.replay(context.Background())
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("replay: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("replay: %v, want %q", err, tc.want)
			}
		})
	}
}

// awaitChange wakes for the first of a change, the expiry and ctx's end,
// and a change told before the wait is not lost.
func TestAwaitChange(t *testing.T) {
	stop := errors.New("stopped")
	for _, tc := range []struct {
		name string
		set  func(c *broadcast.Signal, cancel context.CancelCauseFunc, expire chan time.Time)
		want error
	}{
		{"a change", func(c *broadcast.Signal, _ context.CancelCauseFunc, _ chan time.Time) { c.Notify() }, nil},
		{"expired", func(_ *broadcast.Signal, _ context.CancelCauseFunc, e chan time.Time) { e <- time.Time{} }, errExpired},
		{"ctx ended", func(_ *broadcast.Signal, cancel context.CancelCauseFunc, _ chan time.Time) { cancel(stop) }, stop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c broadcast.Signal
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			expire := make(chan time.Time, 1)
			wakeups := []<-chan struct{}{c.Wait()} // taken before the change, as a waiter does
			tc.set(&c, cancel, expire)
			if err := awaitChange(ctx, wakeups, expire); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("awaitChange = %v, want %v", err, tc.want)
			}
		})
	}
}
