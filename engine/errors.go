package engine

import (
	"errors"
	"strings"
)

// Sentinel causes of a failed dispatch. Match them with [errors.Is] on the
// error [Dispatcher.Dispatch] returns.
var (
	// ErrInvalidChannel means the namespace or task queue cannot form a
	// channel name.
	ErrInvalidChannel = errors.New("invalid channel name")
	// ErrInvalidRequest means the request cannot be dispatched as given,
	// for example because a timeout is negative.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrUnknownChannel means no pool or router serves the channel. Pools
	// and routers wrap it so that callers can tell a configuration problem
	// apart.
	ErrUnknownChannel = errors.New("unknown channel")
	// ErrNoWorkers means no candidate was left, or the router chose none.
	// Its text is the seed's NoWorkersAvailable, which the journal keeps.
	ErrNoWorkers = errors.New("NoWorkersAvailable")
	// ErrActivityFailed means the worker answered with a Failed result.
	ErrActivityFailed = errors.New("activity failed")
	// ErrRouting means the router failed or chose a worker that was not a
	// candidate.
	ErrRouting = errors.New("routing failed")
	// ErrRouterTimeout means a router's call ran past its deadline and was
	// stopped. A router returns it, perhaps wrapped, from Select; the
	// dispatch then fails with an error that matches both it and
	// ErrRouting. A what-if over a journal counts the decisions on which the
	// router timed out by it.
	ErrRouterTimeout = errors.New("routing script timed out")
	// ErrStartToCloseTimeout means one attempt waited longer than the
	// request's start-to-close timeout.
	ErrStartToCloseTimeout = errors.New("start-to-close timeout")
	// ErrScheduleToCloseTimeout means the whole conversation took longer
	// than the request's schedule-to-close timeout.
	ErrScheduleToCloseTimeout = errors.New("schedule-to-close timeout")
	// ErrScheduleToStartTimeout means the activity waited in the channel's
	// backlog longer than the request's schedule-to-start timeout.
	ErrScheduleToStartTimeout = errors.New("schedule-to-start timeout")
	// ErrBacklogFull means the channel's backlog already held as many
	// waiting activities as it may (its max_backlog).
	ErrBacklogFull = errors.New("backlog full")
	// ErrWorkerFull is what [Conversation.Link] returns, wrapped, for a
	// worker with no free slot: the activity waits in the backlog.
	ErrWorkerFull = errors.New("worker has no free slot")
	// ErrNotStarted is what [Conversation.Send] returns, wrapped, when the
	// worker refused the activity without starting it (a remote worker
	// that is full, or leaving, rejects it): the conversation has freed the
	// slot Link took, and the dispatcher puts the activity back in its
	// channel's backlog, to be routed again. It is not an exit: the worker
	// is not excluded. The pool must not show that worker with a free slot
	// again before its capacity changes, or the activity would bounce
	// between the backlog and the worker.
	ErrNotStarted = errors.New("worker did not start the activity")
	// ErrRecord means the recorder could not record an operation.
	ErrRecord = errors.New("record failed")
	// ErrPanic means a pool, router, conversation or recorder panicked; the
	// dispatcher contained it and closed the conversation.
	ErrPanic = errors.New("panic during dispatch")
)

// DispatchError is the error of a dispatch that did not complete. It names
// the channel, the workflow and, once one was selected, the worker; Err is the
// cause and matches the sentinels above through [errors.Is].
type DispatchError struct {
	Channel        ChannelName // zero when the channel name itself was invalid
	WorkflowID     string
	ConversationID string // empty when no conversation was opened
	WorkerID       string // empty when no worker was selected
	Err            error
}

// Error implements error: "dispatch NS/QUEUE workflow W [worker X]: cause",
// naming the channel the way configs and the CLI do.
func (e *DispatchError) Error() string {
	var b strings.Builder
	b.WriteString("dispatch")
	if !e.Channel.IsZero() {
		b.WriteString(" ")
		b.WriteString(e.Channel.Short())
	}
	b.WriteString(" workflow ")
	if e.WorkflowID == "" {
		b.WriteString(`""`)
	} else {
		b.WriteString(e.WorkflowID)
	}
	if e.WorkerID != "" {
		b.WriteString(" worker ")
		b.WriteString(e.WorkerID)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *DispatchError) Unwrap() error { return e.Err }
