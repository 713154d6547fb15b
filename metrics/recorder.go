package metrics

import (
	"context"

	"github.com/aion-dispatch/dispatch/engine"
)

// Recorder returns an [engine.Recorder] that counts each operation in the
// recorder families, then hands it, unchanged, to next and returns what
// next returns. A nil next records nothing further, and its ReplayOutcome
// finds nothing, so every dispatch runs live.
//
// The operation is counted before next records it, and whether or not next
// succeeds: the families count what the engine did, not what the journal
// kept. From the operations:
//
//   - worker_selected: dispatch_decisions_total{channel,worker}; with
//     attempt > 1, dispatch_reroutes_total{channel}; with a wait in the
//     backlog, dispatch_backlog_wait_seconds{channel};
//   - worker_exited: dispatch_worker_exits_total{channel};
//   - conversation_closed: dispatch_conversations_total{channel,state},
//     state "completed" for a close in state activity_completed and
//     "failed" for any other.
//
// The channel label is the channel's short form, "namespace/task_queue".
// A channel's series appear, at zero, the first time one of its operations
// is seen; a worker's, with its first decision. Neither is removed.
func (m *Metrics) Recorder(next engine.Recorder) engine.Recorder {
	return &recorder{m: m, next: next}
}

// recorder is what [Metrics.Recorder] returns.
type recorder struct {
	m    *Metrics
	next engine.Recorder
}

// ReplayOutcome implements [engine.Recorder]: it asks next.
func (r *recorder) ReplayOutcome(ctx context.Context, channel engine.ChannelName, req engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	if r.next == nil {
		return engine.RecordedOutcome{}, false, nil
	}
	return r.next.ReplayOutcome(ctx, channel, req)
}

// Record implements [engine.Recorder]: it counts op, then records it with
// next. A conversation_closed with a result that next refuses is counted
// when the dispatcher records it again without the result (as it does),
// so that each close is counted once.
func (r *recorder) Record(ctx context.Context, op engine.Operation) error {
	if r.next == nil {
		r.m.observe(&op)
		return nil
	}
	if op.Kind == engine.OpConversationClosed && !op.Result.IsZero() {
		err := r.next.Record(ctx, op)
		if err == nil {
			r.m.observe(&op)
		}
		return err
	}
	r.m.observe(&op)
	return r.next.Record(ctx, op)
}

// observe counts op in the families it belongs to.
func (m *Metrics) observe(op *engine.Operation) {
	switch op.Kind {
	case engine.OpWorkerSelected:
		s := m.series(op.Channel)
		m.decision(s, op.WorkerID).Inc()
		if op.Attempt > 1 {
			s.reroutes.Inc()
		}
		if op.Waited > 0 {
			s.wait.Observe(op.Waited.Seconds())
		}
	case engine.OpWorkerExited:
		m.series(op.Channel).exits.Inc()
	case engine.OpConversationClosed:
		s := m.series(op.Channel)
		if op.State.Name == engine.ActivityCompleted {
			s.completed.Inc()
		} else {
			s.failed.Inc()
		}
	}
}
