package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/aion-dispatch/dispatch/engine"
)

// ErrNonDeterminism: a replayed workflow asked for a different activity
// than the one recorded at that point of its history.
var ErrNonDeterminism = errors.New("non-determinism")

// NonDeterminismError says where a replay diverged from the journal.
type NonDeterminismError struct {
	WorkflowID string
	Channel    engine.ChannelName
	Position   int // 1-based: the n-th dispatch of the workflow on the channel
	Recorded   engine.ActivityRequest
	Requested  engine.ActivityRequest
	Line       int // the line of the recorded conversation_opened
}

// Error implements error.
func (e *NonDeterminismError) Error() string {
	return fmt.Sprintf("%v: workflow %s on %s, dispatch #%d (journal line %d): recorded %s, requested %s",
		ErrNonDeterminism, e.WorkflowID, e.Channel, e.Position, e.Line, describe(e.Recorded), describe(e.Requested))
}

// Is makes a NonDeterminismError match ErrNonDeterminism.
func (e *NonDeterminismError) Is(target error) bool { return target == ErrNonDeterminism }

func describe(r engine.ActivityRequest) string {
	in := string(r.Input.Data)
	if len(in) > 80 {
		in = in[:77] + "..."
	}
	return fmt.Sprintf("%s(%s)", r.ActivityType, in)
}

// Outcome is one recorded dispatch: its request and how it ended.
type Outcome struct {
	ConversationID string
	Request        engine.ActivityRequest
	Channel        engine.ChannelName
	WorkerID       string // the worker of the last attempt, if any
	Result         engine.ActivityResult
	Err            error // nil when the dispatch succeeded
	Line           int   // the line of conversation_opened
}

// Replay answers engine.Recorder's ReplayOutcome from a journal: the n-th
// dispatch of a workflow on a channel gets the n-th recorded outcome. A
// request whose activity type or input differs from the recorded one is a
// *NonDeterminismError; past the recorded history the dispatch goes live.
// It is safe for concurrent use.
//
// A Replay must answer any workflow at any time, so it holds an index of
// the finished dispatches: each one's request and outcome (not its other
// steps), from when it is made until that dispatch has been replayed.
type Replay struct {
	mu      sync.Mutex
	history map[replayKey]*history
}

type replayKey struct {
	workflow string
	channel  engine.ChannelName
}

// history is what is left to replay of one workflow on one channel.
type history struct {
	answered int       // how many were replayed
	left     []Outcome // the rest, in order
}

// NewReplay indexes the outcomes of ops, in journal order, with lines the
// 1-based line of each op (nil if unknown). Conversations that never closed
// (a crash) are not outcomes: their dispatch did not finish.
func NewReplay(ops []engine.Operation, lines []int) *Replay {
	p := &Replay{history: make(map[replayKey]*history)}
	for _, o := range Outcomes(ops, lines) {
		k := replayKey{o.Request.WorkflowID, o.Channel}
		h := p.history[k]
		if h == nil {
			h = &history{}
			p.history[k] = h
		}
		h.left = append(h.left, o)
	}
	return p
}

// Outcomes returns the finished dispatches of ops in the order they opened.
func Outcomes(ops []engine.Operation, lines []int) []Outcome {
	t := newTracker()
	var out []Outcome
	for i, op := range ops {
		line := i + 1
		if lines != nil {
			line = lines[i]
		}
		if o, ok := t.add(line, op); ok {
			out = append(out, o)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// tracker follows the conversations of a journal as its operations come
// and gives each finished dispatch when its conversation closes. It holds
// the open conversations only.
type tracker struct{ open map[string]Outcome }

func newTracker() *tracker { return &tracker{open: make(map[string]Outcome)} }

// add takes op, found at line, and returns the outcome it finishes, if it
// is the close of an open conversation.
func (t *tracker) add(line int, op engine.Operation) (Outcome, bool) {
	switch op.Kind {
	case engine.OpConversationOpened:
		req := op.Request
		if req.WorkflowID == "" {
			req.WorkflowID = op.WorkflowID
		}
		t.open[op.ConversationID] = Outcome{ConversationID: op.ConversationID, Request: req, Channel: op.Channel, Line: line}
	case engine.OpConversationClosed:
		o, ok := t.open[op.ConversationID]
		if !ok {
			return Outcome{}, false
		}
		delete(t.open, op.ConversationID)
		o.WorkerID = op.WorkerID
		o.Result = op.Result
		o.Err = recordedError(op)
		return o, true
	}
	return Outcome{}, false
}

// sameRequest reports whether req asks for what o recorded.
func sameRequest(o Outcome, req engine.ActivityRequest) bool {
	return o.Request.ActivityType == req.ActivityType && bytes.Equal(o.Request.Input.Data, req.Input.Data)
}

// recordedError rebuilds the error a dispatch returned from its
// conversation_closed line: the recorded message, matching the engine's
// sentinel it names.
func recordedError(op engine.Operation) error {
	if op.Message == "" {
		if op.Result.Status == engine.StatusFailed {
			return &engine.DispatchError{Channel: op.Channel, WorkflowID: op.WorkflowID, ConversationID: op.ConversationID,
				WorkerID: op.WorkerID, Err: fmt.Errorf("%w: %s", engine.ErrActivityFailed, op.Result.Error)}
		}
		return nil
	}
	// The message is the dispatch error's text: its first line starts with
	// the sentinel's text (a close error may follow on later lines). A
	// failed result is an activity failure whatever its message says.
	var cause error
	if op.Result.Status == engine.StatusFailed {
		cause = engine.ErrActivityFailed
	} else {
		first, _, _ := strings.Cut(op.Message, "\n")
		for _, s := range []error{engine.ErrNoWorkers, engine.ErrActivityFailed, engine.ErrStartToCloseTimeout,
			engine.ErrScheduleToCloseTimeout, engine.ErrScheduleToStartTimeout, engine.ErrBacklogFull,
			engine.ErrRouting, engine.ErrRecord, engine.ErrPanic, engine.ErrUnknownChannel} {
			if strings.HasPrefix(first, s.Error()) || strings.HasPrefix(first, "worker pool: "+s.Error()) {
				cause = s
				break
			}
		}
	}
	return &engine.DispatchError{Channel: op.Channel, WorkflowID: op.WorkflowID, ConversationID: op.ConversationID,
		WorkerID: op.WorkerID, Err: &replayedError{msg: op.Message, cause: cause}}
}

// replayedError is a recorded error message that still matches its sentinel.
type replayedError struct {
	msg   string
	cause error
}

func (e *replayedError) Error() string { return e.msg }
func (e *replayedError) Unwrap() error { return e.cause }

// ReplayOutcome implements engine.Recorder's ReplayOutcome. An outcome is
// let go once replayed.
func (p *Replay) ReplayOutcome(_ context.Context, ch engine.ChannelName, req engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	k := replayKey{req.WorkflowID, ch}
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.history[k]
	if h == nil {
		return engine.RecordedOutcome{}, false, nil // past the recorded history: live
	}
	o := h.left[0]
	if !sameRequest(o, req) {
		return engine.RecordedOutcome{}, false, &NonDeterminismError{WorkflowID: req.WorkflowID, Channel: ch,
			Position: h.answered + 1, Recorded: o.Request, Requested: req, Line: o.Line}
	}
	h.left[0] = Outcome{}
	h.left = h.left[1:]
	h.answered++
	if len(h.left) == 0 {
		delete(p.history, k)
	}
	return engine.RecordedOutcome{Result: o.Result, Err: o.Err}, true, nil
}

// Recorder joins a Replay and a Writer into an engine.Recorder: recorded
// dispatches are answered from the journal, and live ones (past the
// recorded history) are written. Either may be nil: no Replay dispatches
// everything live; no Writer records nothing.
type Recorder struct {
	Replay *Replay
	Writer *Writer
}

// ReplayOutcome implements engine.Recorder.
func (r Recorder) ReplayOutcome(ctx context.Context, ch engine.ChannelName, req engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	if r.Replay == nil {
		return engine.RecordedOutcome{}, false, nil
	}
	return r.Replay.ReplayOutcome(ctx, ch, req)
}

// Record implements engine.Recorder.
func (r Recorder) Record(ctx context.Context, op engine.Operation) error {
	if r.Writer == nil {
		return nil
	}
	return r.Writer.Record(ctx, op)
}
