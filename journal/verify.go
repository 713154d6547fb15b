package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/aion-dispatch/dispatch/engine"
)

// liveCounter stands in for the pool, router, conversations and ids of a
// replaying dispatcher: it counts and refuses every call, since a replay
// must make none.
type liveCounter struct{ calls int }

func (l *liveCounter) Workers(context.Context, engine.ChannelName, engine.ActivityRequest) ([]engine.Worker, error) {
	l.calls++
	return nil, errors.New("replay reached the worker pool")
}

func (l *liveCounter) Select(context.Context, engine.Selection) (engine.Decision, error) {
	l.calls++
	return engine.Decision{}, errors.New("replay reached the router")
}

func (l *liveCounter) Open(context.Context, string, engine.ChannelName, string) (engine.Conversation, error) {
	l.calls++
	return nil, errors.New("replay opened a conversation")
}

func (l *liveCounter) NextConversationID() string {
	l.calls++
	return "live"
}

// Report is what Verify found in a journal.
type Report struct {
	Summary   Summary // the operations read, and the outcomes replayed
	Truncated int     // the line of a torn last line, which was skipped; or 0
	// Unfinished are the conversations opened and never closed, at the
	// lines that opened them: what a crash leaves. They are not replayed.
	Unfinished []Problem
	Problems   int     // how many problems were found; the replay stops at the first
	First      Problem // the first problem, when Problems > 0
}

func (r *Report) problem(p Problem) {
	if r.Problems == 0 {
		r.First = p
	}
	r.Problems++
}

// Verify reads the journal in r, checks it (see Checker) and dispatches
// every finished conversation again, as it closes, through a dispatcher in
// replay mode, checking that each gets its recorded outcome without a
// single call to a pool, router or conversation. The problems it finds are
// in the Report; its error says that the journal could not be read to its
// end (a *LineError names the line), the Report then covering the lines
// before.
//
// It reads the journal once, line by line, and holds what is open at once
// (see Checker; a replayed conversation is let go when it closes): its
// memory does not grow with the journal's length.
func Verify(ctx context.Context, r io.Reader) (Report, error) {
	v, err := newVerifier()
	if err != nil {
		return Report{}, err
	}
	jr := NewReader(r)
	checker, convs := NewChecker(), newTracker()
	var rep Report
	for line, op := range jr.All() {
		rep.Summary.add(op)
		for _, p := range checker.Add(line, op) {
			rep.problem(p)
		}
		o, ok := convs.add(line, op)
		if !ok || rep.Problems > 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("journal: verify stopped at line %d: %w", line, err)
		}
		if p, ok := v.verify(ctx, o); !ok {
			rep.problem(p)
			continue
		}
		rep.Summary.addOutcome(o)
	}
	rep.Truncated = jr.Truncated()
	rep.Unfinished = checker.Unfinished()
	return rep, jr.Err()
}

// verifier replays one finished dispatch at a time.
type verifier struct {
	live *liveCounter
	rec  *oneOutcome
	d    *engine.Dispatcher
}

func newVerifier() (*verifier, error) {
	v := &verifier{live: &liveCounter{}, rec: &oneOutcome{}}
	d, err := engine.NewDispatcher(engine.Options{Pool: v.live, Router: v.live, Conversations: v.live, IDs: v.live, Recorder: v.rec})
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	v.d = d
	return v, nil
}

// verify dispatches o's request again and checks that it gets o's outcome
// without a live call; if not, it returns the Problem.
func (v *verifier) verify(ctx context.Context, o Outcome) (Problem, bool) {
	if q := o.Channel.TaskQueue(); o.Request.TaskQueue != q {
		return Problem{Line: o.Line, ConversationID: o.ConversationID,
			Msg: fmt.Sprintf("the request's task_queue %q is not its channel's %q: a replay would dispatch it elsewhere", o.Request.TaskQueue, q)}, false
	}
	v.rec.o = o
	res, err := v.d.Dispatch(ctx, o.Channel.Namespace(), o.Request)
	if v.live.calls > 0 {
		return Problem{Line: o.Line, ConversationID: o.ConversationID,
			Msg: fmt.Sprintf("the replay made a live call: %v", err)}, false
	}
	if errText(err) != errText(o.Err) || res.Status != o.Result.Status || string(res.Output.Data) != string(o.Result.Output.Data) {
		return Problem{Line: o.Line, ConversationID: o.ConversationID,
			Msg: fmt.Sprintf("replayed (%v, %v), recorded (%v, %v)", res.Status, err, o.Result.Status, o.Err)}, false
	}
	return Problem{}, true
}

// oneOutcome is the recorder of Verify's dispatcher: it answers the
// dispatch being verified from its own outcome, if the request is the one
// recorded on that channel, and lets anything else go live (which the
// verifier then counts). Dispatched in the order they opened, a journal's
// dispatches would get the same answers from a Replay.
type oneOutcome struct{ o Outcome }

func (r *oneOutcome) ReplayOutcome(_ context.Context, ch engine.ChannelName, req engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	if ch != r.o.Channel || req.WorkflowID != r.o.Request.WorkflowID || !sameRequest(r.o, req) {
		return engine.RecordedOutcome{}, false, nil
	}
	return engine.RecordedOutcome{Result: r.o.Result, Err: r.o.Err}, true, nil
}

func (r *oneOutcome) Record(context.Context, engine.Operation) error {
	return errors.New("replay recorded an operation")
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Tally counts what happened on one channel or to one worker.
type Tally struct {
	Conversations, Completed, Failed, NoWorkers, Timeouts, OtherErrors int // outcomes
	Selected, Answered, AnsweredFailed, Exits, TimedOut                int // steps
	// ScheduleToStartTimeouts counts the outcomes that were a wait in the
	// backlog running out of its schedule-to-start (Timeouts counts them
	// too).
	ScheduleToStartTimeouts int
	// Waits counts the activity_waiting steps of a channel: how many
	// times an activity waited in its backlog.
	Waits int
	// Waited holds how long they waited, as the worker_selected that
	// ended each wait says (its waited), for a channel.
	Waited Durations
}

// Summary is a journal's story in numbers.
type Summary struct {
	Operations int
	Total      Tally
	Channels   map[string]*Tally    // by "namespace/task_queue"
	Workers    map[WorkerKey]*Tally // by channel and worker id
	// waiting holds the conversations waiting in a backlog, until the
	// selection or the close that ends the wait: what is open at once.
	waiting map[string]bool
}

// WorkerKey names a worker: ids are unique within a channel only.
type WorkerKey struct {
	Channel string // "namespace/task_queue"
	Worker  string
}

// ChannelNames returns the channels of s in order.
func (s Summary) ChannelNames() []string { return sortedNames(s.Channels) }

// WorkerKeys returns the workers of s in order of channel, then id.
func (s Summary) WorkerKeys() []WorkerKey {
	out := make([]WorkerKey, 0, len(s.Workers))
	for k := range s.Workers {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Channel != out[j].Channel {
			return out[i].Channel < out[j].Channel
		}
		return out[i].Worker < out[j].Worker
	})
	return out
}

func sortedNames(m map[string]*Tally) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Summarize counts the outcomes and steps of ops, per channel and per
// worker, and the waits in each channel's backlog.
func Summarize(ops []engine.Operation, outcomes []Outcome) Summary {
	var s Summary
	for _, op := range ops {
		s.add(op)
	}
	for _, o := range outcomes {
		s.addOutcome(o)
	}
	return s
}

func (s *Summary) tally(ch engine.ChannelName) *Tally {
	if s.Channels == nil {
		s.Channels = map[string]*Tally{}
	}
	k := ch.Short()
	if s.Channels[k] == nil {
		s.Channels[k] = &Tally{}
	}
	return s.Channels[k]
}

func (s *Summary) worker(op engine.Operation) *Tally {
	if s.Workers == nil {
		s.Workers = map[WorkerKey]*Tally{}
	}
	k := WorkerKey{Channel: op.Channel.Short(), Worker: op.WorkerID}
	if s.Workers[k] == nil {
		s.Workers[k] = &Tally{}
	}
	return s.Workers[k]
}

// add counts one operation's step.
func (s *Summary) add(op engine.Operation) {
	s.Operations++
	ch := s.tally(op.Channel)
	switch op.Kind {
	case engine.OpActivityWaiting:
		ch.Waits++
		if s.waiting == nil {
			s.waiting = map[string]bool{}
		}
		s.waiting[op.ConversationID] = true
	case engine.OpConversationClosed:
		delete(s.waiting, op.ConversationID)
	case engine.OpWorkerSelected:
		ch.Selected++
		s.worker(op).Selected++
		if s.waiting[op.ConversationID] {
			// A wait too short for the clock has no waited: it counts as 0.
			ch.Waited.Add(op.Waited)
			delete(s.waiting, op.ConversationID)
		}
	case engine.OpWorkerExited:
		ch.Exits++
		s.worker(op).Exits++
	case engine.OpWorkerTimedOut:
		ch.TimedOut++
		s.worker(op).TimedOut++
	case engine.OpMessageReceived:
		w := s.worker(op)
		if op.Result.Status == engine.StatusCompleted {
			w.Answered++
		} else {
			w.AnsweredFailed++
		}
	}
}

// addOutcome counts one replayed outcome.
func (s *Summary) addOutcome(o Outcome) {
	for _, t := range []*Tally{s.tally(o.Channel), &s.Total} {
		t.Conversations++
		switch {
		case o.Err == nil:
			t.Completed++
		case errors.Is(o.Err, engine.ErrActivityFailed):
			t.Failed++
		case errors.Is(o.Err, engine.ErrNoWorkers):
			t.NoWorkers++
		case errors.Is(o.Err, engine.ErrStartToCloseTimeout), errors.Is(o.Err, engine.ErrScheduleToCloseTimeout):
			t.Timeouts++
		case errors.Is(o.Err, engine.ErrScheduleToStartTimeout):
			t.Timeouts++
			t.ScheduleToStartTimeouts++
		default:
			t.OtherErrors++
		}
	}
}
