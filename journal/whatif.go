package journal

import (
	"context"
	"errors"
	"iter"
	"slices"
	"strings"

	"github.com/aion-dispatch/dispatch/engine"
)

// ChangeKind says how another router's decision differs from the recorded
// one.
type ChangeKind uint8

// The kinds of change, the worst first: the order in which WhatIf lists
// its examples.
const (
	// ChangeTimeout: the router ran past its deadline
	// (errors.Is [engine.ErrRouterTimeout]).
	ChangeTimeout ChangeKind = iota + 1
	// ChangeError: the router failed, or chose an id that is not a
	// candidate (errors.Is [engine.ErrRouting]).
	ChangeError
	// ChangeNone: the router chose none, or a worker with no free slot;
	// the engine would have made the activity wait.
	ChangeNone
	// ChangeWorker: the router chose another worker, one with a free slot.
	ChangeWorker
)

var changeKindNames = [...]string{"", "timeout", "error", "none", "changed"}

// String returns the kind's name: timeout, error, none or changed.
func (k ChangeKind) String() string {
	if int(k) < len(changeKindNames) {
		return changeKindNames[k]
	}
	return "unknown"
}

// Failed reports whether the router failed (an error or a timeout): a
// decision it would fail in service too.
func (k ChangeKind) Failed() bool { return k == ChangeTimeout || k == ChangeError }

// Change is one recorded decision another router would make differently,
// with what the router saw.
type Change struct {
	Line           int // the line of the recorded worker_selected
	Kind           ChangeKind
	Router         engine.RouterVersion // the recorded version that decided
	WorkflowID     string
	ConversationID string
	ActivityType   string
	Attempt        int
	Excluded       []string
	// Candidates are the workers the router saw (the recorded ones without
	// the excluded), with their load and tags then.
	Candidates []engine.ConsumerStateView
	Recorded   string // the worker the journal's router chose
	// Proposed is the worker the other router chooses: "" for none, or a
	// full worker's id (Kind ChangeNone), or the id it chose that is not a
	// candidate (Kind ChangeError).
	Proposed string
	Err      error // the other router's error, if it failed
}

// WorkerShift is one worker's decisions, recorded and proposed.
type WorkerShift struct {
	Worker   string
	Recorded int // decisions the journal's router gave it
	Proposed int // decisions the other router gives it (a free worker)
}

// Delta is Proposed − Recorded: the load the other router moves to the
// worker (away when negative).
func (w WorkerShift) Delta() int { return w.Proposed - w.Recorded }

// VersionShift sums up the decisions one recorded router version made, and
// what the other router makes of them.
type VersionShift struct {
	Router    engine.RouterVersion // the zero version for a journal that records none
	Decisions int                  // decisions re-run
	Changed   int                  // of them, those made differently (all kinds)
	Errors    int                  // of them, those on which the other router failed (timeouts included)
	Timeouts  int                  // of the errors, those that were timeouts
	Nones     int                  // of them, those on which it chose none or a full worker
	// Workers are the workers either router chose, by id.
	Workers []WorkerShift
}

// Share returns n as a percentage of the version's decisions.
func (v VersionShift) Share(n int) float64 {
	if v.Decisions == 0 {
		return 0
	}
	return 100 * float64(n) / float64(v.Decisions)
}

// WhatIfReport sums up WhatIf.
type WhatIfReport struct {
	Decisions int  // recorded decisions on the channel that were re-run
	Changed   int  // decisions the other router makes differently (errors and nones included)
	Errors    int  // decisions on which the other router failed
	Timeouts  int  // errors that were the router running out of time
	Nones     int  // decisions on which the other router chose none or a full worker
	Stopped   bool // WhatIfOptions.MaxTimeouts was reached before the end
	// Examples are the first few changes: the failures (timeouts and
	// errors) and nones first, in journal order, then changes of worker.
	Examples []Change
	// Versions split the re-run decisions by the recorded router version
	// that made them (a journal spans reloads), in the order each first
	// decided.
	Versions []VersionShift
	// Recorded counts the decisions on the channel in the whole journal:
	// Decisions, and those after a stop.
	Recorded int
	// Channels counts the recorded decisions per channel, the channel's
	// included: where to look when it has none.
	Channels map[engine.ChannelName]int
}

// ChangedPercent is Changed as a percentage of Decisions (0 with none).
func (r WhatIfReport) ChangedPercent() float64 {
	if r.Decisions == 0 {
		return 0
	}
	return 100 * float64(r.Changed) / float64(r.Decisions)
}

// WhatIfOptions tune WhatIf.
type WhatIfOptions struct {
	Keep int // how many changes to keep as examples
	// MaxTimeouts, if positive, stops the run after that many decisions on
	// which the router timed out (errors.Is [engine.ErrRouterTimeout]): a
	// script stuck in a loop would otherwise cost its whole deadline on
	// every decision. The rest of the journal is only counted.
	MaxTimeouts int
}

// Decision is one recorded routing decision: what the router saw and what
// it chose.
type Decision struct {
	Line int // the line of its worker_selected
	// Selection is what the router saw: the request of its conversation,
	// the candidates with their states then, the excluded ids, the attempt
	// and the conversation id (so seeded random draws are the same).
	Selection engine.Selection
	Chosen    string               // the worker the journal's router chose
	Router    engine.RouterVersion // the version that chose it, as recorded
}

// Decisions yields the recorded routing decisions of ops, as Reader.All
// yields them with their lines, in journal order. It holds the requests of
// open conversations, not the journal.
func Decisions(ops iter.Seq2[int, engine.Operation]) iter.Seq[Decision] {
	return func(yield func(Decision) bool) {
		requests := map[string]engine.ActivityRequest{}
		for line, op := range ops {
			switch op.Kind {
			case engine.OpConversationOpened:
				requests[op.ConversationID] = op.Request
			case engine.OpConversationClosed:
				delete(requests, op.ConversationID) // only open conversations are held
			case engine.OpWorkerSelected:
				in := engine.NewSelection(op.Channel, op.ConversationID, op.Attempt, requests[op.ConversationID],
					engine.WorkersOf(op.Candidates), op.Excluded)
				in.WorkflowID = op.WorkflowID // the line's own: its conversation's opening may be before ops
				if !yield(Decision{Line: line, Selection: in, Chosen: op.WorkerID, Router: op.Router}) {
					return
				}
			}
		}
	}
}

// versionTally is a VersionShift being counted.
type versionTally struct {
	VersionShift
	workers map[string]*WorkerShift
}

func (t *versionTally) worker(id string) *WorkerShift {
	w := t.workers[id]
	if w == nil {
		w = &WorkerShift{Worker: id}
		t.workers[id] = w
	}
	return w
}

// WhatIf re-runs every recorded decision on channel, as ops yields them with
// their lines (Reader.All), through r, with the same request, candidates,
// excluded ids, attempt and conversation id (so seeded random draws are the
// same), and reports which would change, and how the decisions would move
// between workers, per recorded router version. Worker load is not
// re-simulated: each decision sees the load recorded with it, although a
// changed decision would have changed the loads later decisions saw. It
// holds the requests of the channel's open conversations, a tally per
// version and worker, and at most twice opts.Keep changes, not the journal.
func WhatIf(ctx context.Context, ops iter.Seq2[int, engine.Operation], channel engine.ChannelName, r engine.Router, opts WhatIfOptions) WhatIfReport {
	rep := WhatIfReport{Channels: map[engine.ChannelName]int{}}
	versions := map[engine.RouterVersion]*versionTally{}
	var order []engine.RouterVersion
	var worst, moved []Change // examples: failures and nones; changes of worker
	for dec := range Decisions(ops) {
		rep.Channels[dec.Selection.Channel]++
		if dec.Selection.Channel != channel {
			continue
		}
		rep.Recorded++
		if opts.MaxTimeouts > 0 && rep.Timeouts >= opts.MaxTimeouts {
			rep.Stopped = true
			continue
		}
		rep.Decisions++
		in := dec.Selection
		d, err := r.Select(ctx, in)
		kind := ChangeWorker
		switch {
		case errors.Is(err, engine.ErrRouterTimeout):
			kind = ChangeTimeout
		case err != nil:
			kind = ChangeError
		default:
			_, why := engine.CheckDecision(in.Candidates, d)
			switch {
			case errors.Is(why, engine.ErrRouting):
				// An id that is not a candidate fails the router, as in
				// the engine.
				kind, err = ChangeError, why
			case why != nil:
				kind = ChangeNone // none, or a full worker: the engine waits
			}
		}

		v := versions[dec.Router]
		if v == nil {
			v = &versionTally{VersionShift: VersionShift{Router: dec.Router}, workers: map[string]*WorkerShift{}}
			versions[dec.Router] = v
			order = append(order, dec.Router)
		}
		v.Decisions++
		v.worker(dec.Chosen).Recorded++
		if kind == ChangeWorker {
			v.worker(d.WorkerID).Proposed++
			if d.WorkerID == dec.Chosen {
				continue
			}
		}
		rep.Changed++
		v.Changed++
		switch kind {
		case ChangeTimeout:
			rep.Timeouts++
			v.Timeouts++
			fallthrough
		case ChangeError:
			rep.Errors++
			v.Errors++
		case ChangeNone:
			rep.Nones++
			v.Nones++
		}
		examples := &moved
		if kind != ChangeWorker {
			examples = &worst
		}
		if len(*examples) < opts.Keep {
			*examples = append(*examples, newChange(dec, kind, d.WorkerID, err))
		}
	}
	rep.Examples = append(worst, moved...)[:min(len(worst)+len(moved), opts.Keep)]
	if len(rep.Examples) == 0 {
		rep.Examples = nil
	}
	for _, k := range order {
		v := versions[k]
		for _, w := range v.workers {
			v.Workers = append(v.Workers, *w)
		}
		slices.SortFunc(v.Workers, func(a, b WorkerShift) int { return strings.Compare(a.Worker, b.Worker) })
		rep.Versions = append(rep.Versions, v.VersionShift)
	}
	return rep
}

// newChange describes dec, which the other router decided differently.
func newChange(dec Decision, kind ChangeKind, proposed string, err error) Change {
	in := dec.Selection
	cands := make([]engine.ConsumerStateView, len(in.Candidates))
	for i, w := range in.Candidates {
		cands[i] = w.State
	}
	return Change{Line: dec.Line, Kind: kind, Router: dec.Router, WorkflowID: in.WorkflowID,
		ConversationID: in.ConversationID, ActivityType: in.Request.ActivityType, Attempt: in.Attempt,
		Excluded: in.Excluded, Candidates: cands, Recorded: dec.Chosen, Proposed: proposed, Err: err}
}
