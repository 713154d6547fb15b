package engine

import (
	"context"
	"time"
)

// The interfaces below are what the [Dispatcher] needs from the world. Each is
// small so that a transport, a router or a journal implements only its part.

// WorkerPool supplies the workers subscribed to a channel right now. The
// dispatcher asks again on every attempt, so membership changes take effect
// from the next attempt and nothing in flight is rebalanced.
type WorkerPool interface {
	// Workers returns the current snapshot, in the pool's order. A channel
	// the pool does not serve is an error wrapping [ErrUnknownChannel].
	// The slice is the caller's: the pool does not change it afterwards.
	// With a backlog, a snapshot should not depend on req: a backlog's round
	// stops at the first activity that finds no free slot, taking it that
	// no activity after it would find one.
	Workers(ctx context.Context, channel ChannelName, req ActivityRequest) ([]Worker, error)
}

// Selection is the input of one routing decision.
type Selection struct {
	WorkflowID     string
	Channel        ChannelName
	ConversationID string
	Attempt        int // 1 on the first try, +1 after each exited worker or worker that did not start it
	Request        ActivityRequest
	// Candidates is the pool snapshot without the excluded workers, in the
	// pool's order; never empty.
	Candidates []Worker
	// Excluded holds the ids that exited earlier in this conversation.
	Excluded []string
}

// Decision is a router's answer: the chosen worker's id, or "" for none, and
// the version of the routing logic that decided.
type Decision struct {
	WorkerID string
	Version  RouterVersion
}

// Router picks one worker for one activity.
type Router interface {
	// Select returns the chosen candidate. An empty WorkerID means no
	// candidate is acceptable (NoWorkersAvailable); an id that is not among
	// the candidates is a routing error.
	Select(ctx context.Context, in Selection) (Decision, error)
}

// CapacitySignal tells the activities waiting in a channel's backlog that
// the channel may take more work. A pool implements it; the dispatcher
// waits on it, never polls.
type CapacitySignal interface {
	// CapacityChanged returns a channel that is closed the next time the
	// capacity of channel may have grown: a slot freed, a worker joined,
	// restarted or changed capacity, the channel's router was replaced;
	// and when a worker left the channel's membership (see [Membership]),
	// which may end the wait of an activity every remaining member failed.
	// Ask before looking at the capacity, so that no change is missed. It
	// returns the same channel until that one is closed.
	CapacityChanged(channel ChannelName) <-chan struct{}
}

// Membership is what a pool may tell beyond its snapshot: the ids of every
// worker that belongs to a channel, those away for now (exited, about to
// restart) included. With it, the dispatcher tells an activity that no
// worker can take now (it waits) from one that every worker of the channel
// has already failed (NoWorkersAvailable, at once: a poison activity is not
// re-routed for ever). A pool without it is judged by the workers the
// activity's own snapshots showed.
type Membership interface {
	Members(channel ChannelName) []string
}

// BacklogPolicy is how a channel's backlog behaves.
type BacklogPolicy struct {
	// MaxBacklog bounds how many activities may wait at once; a dispatch
	// that would be one more fails with [ErrBacklogFull]. 0 means
	// DefaultMaxBacklog.
	MaxBacklog int
	// FailWhenFull makes a dispatch that no worker can take now fail with
	// [ErrNoWorkers] at once, as the seed did, instead of waiting: for
	// hosts whose workflow engine retries.
	FailWhenFull bool
	// ScheduleToStart is the default of requests that set none.
	ScheduleToStart time.Duration
}

// DefaultMaxBacklog is a channel's max_backlog when its policy sets none.
const DefaultMaxBacklog = 10_000

// ConversationFactory opens dispatch conversations on channels.
type ConversationFactory interface {
	Open(ctx context.Context, workflowID string, channel ChannelName, conversationID string) (Conversation, error)
}

// Conversation is one open dispatch conversation. The dispatcher calls Close
// exactly once on every conversation it opened, whatever happened.
type Conversation interface {
	// Link links the worker's process to the conversation, so that its exit
	// is delivered by Receive, and takes one of the worker's free slots for
	// the attempt: a worker with none fails with an error wrapping
	// [ErrWorkerFull], and the activity waits in the backlog. The slot is
	// the attempt's until its answer, its worker's exit or Close. Linking
	// to a worker that already exited succeeds; the exit is then the next
	// event.
	Link(ctx context.Context, w Worker) error
	// Send delivers the request to the linked worker. A worker that
	// refuses it without starting it (a remote worker that is full) makes
	// Send fail with an error wrapping [ErrNotStarted], after the slot
	// Link took is freed: the activity then waits in the backlog again.
	Send(ctx context.Context, msg DispatchRequest) error
	// Receive waits for the response or exit of the worker linked for the
	// current attempt; it never reports an earlier attempt's worker. When
	// ctx ends first it returns an error e with errors.Is(e, ctx.Err()).
	Receive(ctx context.Context) (Event, error)
	// Close ends the conversation and releases what it holds.
	Close() error
}

// DispatchRequest is the message sent to a linked worker.
type DispatchRequest struct {
	ConversationID string
	Attempt        int // the attempt this request belongs to, from 1
	Request        ActivityRequest
}

// EventKind tells what [Conversation.Receive] observed.
type EventKind uint8

// The kinds of [Event].
const (
	EventResponse     EventKind = iota + 1 // the worker answered
	EventWorkerExited                      // the linked worker exited first
)

// Event is what [Conversation.Receive] observed: a response carrying Result,
// or the linked worker's exit carrying Message.
type Event struct {
	Kind     EventKind
	WorkerID string         // the worker the event is about
	Attempt  int            // the attempt of the request it answers; 0 if unknown
	Result   ActivityResult // on EventResponse
	Message  string         // on EventWorkerExited: why the worker exited
}

// RecordedOutcome is the final outcome of a dispatch as a replay returns it:
// exactly the result and error the live dispatch returned.
type RecordedOutcome struct {
	Result ActivityResult
	Err    error
}

// Recorder records every step of every conversation and, during replay,
// answers dispatches from what was recorded.
type Recorder interface {
	// ReplayOutcome returns the recorded outcome for this dispatch and true,
	// or false when the dispatch should run live.
	ReplayOutcome(ctx context.Context, channel ChannelName, req ActivityRequest) (RecordedOutcome, bool, error)
	// Record appends one operation. An error fails the dispatch. ctx is
	// the dispatch's, bounded by its timeouts, for the steps before the
	// worker answers; the answer (message_received), worker_timed_out and
	// conversation_closed are recorded with a context that is never
	// cancelled, since they state what already happened.
	Record(ctx context.Context, op Operation) error
}

// IDSource hands out conversation ids, unique among the conversations that
// share a journal.
type IDSource interface {
	NextConversationID() string
}
