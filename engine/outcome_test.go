package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
)

// DispatchOutcome says where a dispatch went: its conversation, the worker
// that answered (or had the activity last) and how many were selected.
func TestDispatchOutcome(t *testing.T) {
	exitOnce := func(w **local.Worker) local.Handler {
		return func(ctx context.Context, _ engine.ActivityRequest) engine.ActivityResult {
			(*w).Stop("killed")
			<-ctx.Done()
			return engine.Failed("unreachable")
		}
	}
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, r *rig)
		ns      string
		want    engine.Outcome
		wantErr error
	}{
		{"completed", func(t *testing.T, r *rig) {
			r.start(t, "w1", echo)
		}, testNS, engine.Outcome{ConversationID: "c1", WorkerID: "w1", Attempts: 1}, nil},
		{"failed by the worker", func(t *testing.T, r *rig) {
			r.start(t, "w1", failWith("boom"))
		}, testNS, engine.Outcome{ConversationID: "c1", WorkerID: "w1", Attempts: 1}, engine.ErrActivityFailed},
		{"re-routed", func(t *testing.T, r *rig) {
			var first *local.Worker
			first = r.start(t, "w1", exitOnce(&first))
			r.start(t, "w2", echo)
		}, testNS, engine.Outcome{ConversationID: "c1", WorkerID: "w2", Attempts: 2}, nil},
		{"no workers", func(*testing.T, *rig) {}, testNS,
			engine.Outcome{ConversationID: "c1"}, engine.ErrNoWorkers},
		{"no worker left", func(t *testing.T, r *rig) {
			var only *local.Worker
			only = r.start(t, "w1", exitOnce(&only))
		}, testNS, engine.Outcome{ConversationID: "c1", Attempts: 1}, engine.ErrNoWorkers},
		{"invalid channel", func(*testing.T, *rig) {}, "bad name!", engine.Outcome{}, engine.ErrInvalidChannel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			tc.setup(t, r)
			out, err := r.d.DispatchOutcome(context.Background(), tc.ns, request("wf-1"))
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if out.ConversationID != tc.want.ConversationID || out.WorkerID != tc.want.WorkerID || out.Attempts != tc.want.Attempts {
				t.Fatalf("outcome = %+v, want %+v", out, tc.want)
			}
			if tc.wantErr == nil && string(out.Result.Output.Data) != string(request("wf-1").Input.Data) {
				t.Fatalf("result %+v, want the echo of the input", out.Result)
			}
		})
	}
}
