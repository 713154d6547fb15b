package engine

import (
	"fmt"
	"time"
)

// StateName names a stage of an activity's dispatch.
type StateName uint8

// The stages of an activity, in the order a dispatch goes through them.
const (
	ActivityScheduled StateName = iota + 1 // conversation opened
	ActivityStarted                        // a worker was selected and linked
	ActivityCompleted                      // the worker answered Completed
	ActivityFailed                         // the worker failed, exited or timed out
)

var stateNames = [...]string{
	ActivityScheduled: "activity_scheduled",
	ActivityStarted:   "activity_started",
	ActivityCompleted: "activity_completed",
	ActivityFailed:    "activity_failed",
}

// String returns the journal name, such as "activity_started".
func (n StateName) String() string {
	if n == 0 || int(n) >= len(stateNames) {
		return fmt.Sprintf("StateName(%d)", n)
	}
	return stateNames[n]
}

// MarshalText implements [encoding.TextMarshaler].
func (n StateName) MarshalText() ([]byte, error) { return n.AppendText(nil) }

// AppendText implements [encoding.TextAppender]: it appends the journal
// name, or fails for a name that is none of the states.
func (n StateName) AppendText(b []byte) ([]byte, error) {
	if n == 0 || int(n) >= len(stateNames) {
		return b, fmt.Errorf("invalid activity state %d", n)
	}
	return append(b, stateNames[n]...), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler].
func (n *StateName) UnmarshalText(b []byte) error {
	for i, s := range stateNames {
		if i > 0 && s == string(b) {
			*n = StateName(i)
			return nil
		}
	}
	return fmt.Errorf("unknown activity state %q", b)
}

// ActivityState is the state an operation moved the activity to. RetryEligible
// is meaningful only for [ActivityFailed]: true when the workflow engine may
// retry (the worker exited or timed out), false when the worker itself failed
// the activity.
type ActivityState struct {
	Name          StateName
	RetryEligible bool
}

// IsZero reports whether s is the zero value, which means "no state".
func (s ActivityState) IsZero() bool { return s.Name == 0 }

// The states the dispatcher records.
var (
	StateScheduled = ActivityState{Name: ActivityScheduled}
	StateStarted   = ActivityState{Name: ActivityStarted}
	StateCompleted = ActivityState{Name: ActivityCompleted}
)

// StateFailed returns the failed state with the given retry eligibility.
func StateFailed(retryEligible bool) ActivityState {
	return ActivityState{Name: ActivityFailed, RetryEligible: retryEligible}
}

// OpKind is the kind of one recorded step of a conversation.
type OpKind uint8

// The kinds of [Operation], in lifecycle order.
const (
	OpConversationOpened OpKind = iota + 1
	OpWorkerSelected
	OpMessageSent
	OpMessageReceived
	OpWorkerExited
	OpWorkerTimedOut
	OpConversationClosed
	// OpActivityWaiting: no worker could take the activity now (no free
	// slot, the router chose none, or chose a full worker), so it waits in
	// the channel's backlog; Message says why. It comes after
	// conversation_opened or worker_exited, before the worker_selected that
	// ends the wait (or the close).
	OpActivityWaiting
)

var opKindNames = [...]string{
	OpConversationOpened: "conversation_opened",
	OpWorkerSelected:     "worker_selected",
	OpMessageSent:        "message_sent",
	OpMessageReceived:    "message_received",
	OpWorkerExited:       "worker_exited",
	OpWorkerTimedOut:     "worker_timed_out",
	OpConversationClosed: "conversation_closed",
	OpActivityWaiting:    "activity_waiting",
}

// String returns the journal name, such as "worker_selected".
func (k OpKind) String() string {
	if k == 0 || int(k) >= len(opKindNames) {
		return fmt.Sprintf("OpKind(%d)", k)
	}
	return opKindNames[k]
}

// MarshalText implements [encoding.TextMarshaler].
func (k OpKind) MarshalText() ([]byte, error) { return k.AppendText(nil) }

// AppendText implements [encoding.TextAppender]: it appends the journal
// name, or fails for a kind that is none of the kinds.
func (k OpKind) AppendText(b []byte) ([]byte, error) {
	if k == 0 || int(k) >= len(opKindNames) {
		return b, fmt.Errorf("invalid operation kind %d", k)
	}
	return append(b, opKindNames[k]...), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler].
func (k *OpKind) UnmarshalText(b []byte) error {
	for i, s := range opKindNames {
		if i > 0 && s == string(b) {
			*k = OpKind(i)
			return nil
		}
	}
	return fmt.Errorf("unknown operation kind %q", b)
}

// RouterVersion identifies the routing logic that made a decision.
type RouterVersion struct {
	Lang   string `json:"lang"`             // "lua", "expr", "go", …
	Hash   string `json:"hash,omitempty"`   // content hash of the script
	Source string `json:"source,omitempty"` // where the script came from
}

// Operation is one recorded step of a dispatch conversation. Fields that do
// not apply to a kind are left zero, and a zero field is absent from the
// journal line. Seq and Time are set by the recorder that persists the
// operation; the [Dispatcher] leaves them zero.
//
// Its JSON form is the journal line (see docs/journal.md), which the
// journal package writes and reads. The dispatcher never modifies a slice
// it has passed in an Operation, so a recorder may keep the operation
// without copying it.
type Operation struct {
	Seq            uint64
	Time           time.Time
	Kind           OpKind
	WorkflowID     string
	ConversationID string
	Channel        ChannelName
	WorkerID       string
	State          ActivityState  // the state this step moved the activity to
	Result         ActivityResult // on message_received and conversation_closed
	Message        string         // exit message, timeout or error text
	// Attempt counts selections in the conversation, from 1; set on
	// worker_selected and on the steps of that attempt.
	Attempt int
	// Router, Candidates and Excluded are set on worker_selected: the version
	// that decided, the candidates it saw and the ids excluded before it.
	// Router is also set on a conversation_closed that a routing error
	// ended: the version whose call failed (when the router has versions).
	Router     RouterVersion
	Candidates []ConsumerStateView
	Excluded   []string
	// Request is set on conversation_opened, so that a journal replays alone.
	Request ActivityRequest
	// Waited is set on a worker_selected that ends a wait in the backlog:
	// how long the activity waited there.
	Waited time.Duration
}
