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

// Verify reads the journal in r, checks it (see Checker) and dispatches
// every finished conversation again through a dispatcher in replay mode,
// checking that each gets its recorded outcome without a single call to a
// pool, router or conversation. The problems it finds are in the Report;
// its error says that the journal could not be read to its end (a
// *LineError names the line), the Report then covering the lines before.
func Verify(ctx context.Context, r io.Reader) (Report, error) {
	jr := NewReader(r)
	var ops []engine.Operation
	var lines []int
	for line, op := range jr.All() {
		ops = append(ops, op)
		lines = append(lines, line)
	}
	rep := Report{Truncated: jr.Truncated()}
	checker := NewChecker()
	for i, op := range ops {
		checker.Add(lines[i], op)
	}
	for _, p := range checker.Problems() {
		if p.Unfinished() {
			rep.Unfinished = append(rep.Unfinished, p)
			continue
		}
		if rep.Problems == 0 {
			rep.First = p
		}
		rep.Problems++
	}
	var outcomes []Outcome
	if rep.Problems == 0 {
		var err error
		outcomes, err = verifyAll(ctx, ops, lines)
		if err != nil {
			var p Problem
			if !errors.As(err, &p) {
				return rep, err
			}
			rep.First, rep.Problems = p, 1
		}
	}
	rep.Summary = Summarize(ops, outcomes)
	return rep, jr.Err()
}

// verifyAll replays every finished conversation of ops.
func verifyAll(ctx context.Context, ops []engine.Operation, lines []int) ([]Outcome, error) {
	live := &liveCounter{}
	d, err := engine.NewDispatcher(engine.Options{Pool: live, Router: live, Conversations: live, IDs: live,
		Recorder: Recorder{Replay: NewReplay(ops, lines)}})
	if err != nil {
		return nil, err
	}
	outcomes := Outcomes(ops, lines)
	for _, o := range outcomes {
		res, err := d.Dispatch(ctx, o.Channel.Namespace(), o.Channel.TaskQueue(), o.Request)
		if live.calls > 0 {
			return nil, Problem{Line: o.Line, ConversationID: o.ConversationID,
				Msg: fmt.Sprintf("the replay made a live call: %v", err)}
		}
		if errText(err) != errText(o.Err) || res.Status != o.Result.Status || string(res.Output.Data) != string(o.Result.Output.Data) {
			return nil, Problem{Line: o.Line, ConversationID: o.ConversationID,
				Msg: fmt.Sprintf("replayed (%v, %v), recorded (%v, %v)", res.Status, err, o.Result.Status, o.Err)}
		}
	}
	return outcomes, nil
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
}

// Summary is a journal's story in numbers.
type Summary struct {
	Operations int
	Total      Tally
	Channels   map[string]*Tally    // by "namespace/task_queue"
	Workers    map[WorkerKey]*Tally // by channel and worker id
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

// Summarize counts the outcomes and steps of ops, per channel and per worker.
func Summarize(ops []engine.Operation, outcomes []Outcome) Summary {
	s := Summary{Operations: len(ops), Channels: map[string]*Tally{}, Workers: map[WorkerKey]*Tally{}}
	get := func(m map[string]*Tally, k string) *Tally {
		if m[k] == nil {
			m[k] = &Tally{}
		}
		return m[k]
	}
	worker := func(op engine.Operation) *Tally {
		k := WorkerKey{Channel: op.Channel.Short(), Worker: op.WorkerID}
		if s.Workers[k] == nil {
			s.Workers[k] = &Tally{}
		}
		return s.Workers[k]
	}
	for _, op := range ops {
		ch := get(s.Channels, op.Channel.Short())
		switch op.Kind {
		case engine.OpWorkerSelected:
			ch.Selected++
			worker(op).Selected++
		case engine.OpWorkerExited:
			ch.Exits++
			worker(op).Exits++
		case engine.OpWorkerTimedOut:
			ch.TimedOut++
			worker(op).TimedOut++
		case engine.OpMessageReceived:
			w := worker(op)
			if op.Result.Status == engine.StatusCompleted {
				w.Answered++
			} else {
				w.AnsweredFailed++
			}
		}
	}
	for _, o := range outcomes {
		for _, t := range []*Tally{get(s.Channels, o.Channel.Short()), &s.Total} {
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
			default:
				t.OtherErrors++
			}
		}
	}
	return s
}
