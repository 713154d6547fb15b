package journal

import (
	"context"
	"errors"
	"iter"

	"github.com/aion-dispatch/dispatch/engine"
)

// Change is one recorded decision another router would make differently.
type Change struct {
	Line           int // the line of the recorded worker_selected
	WorkflowID     string
	ConversationID string
	Attempt        int
	Recorded       string // the worker the journal's router chose
	Proposed       string // the worker the other router chooses ("" for none)
	Err            error  // the other router's error, if it failed
}

// WhatIfReport sums up WhatIf.
type WhatIfReport struct {
	Decisions int      // recorded decisions on the channel that were re-run
	Changed   int      // decisions the other router makes differently (errors included)
	Errors    int      // decisions on which the other router failed
	Timeouts  int      // errors that were the router running out of time
	Stopped   bool     // WhatIfOptions.MaxTimeouts was reached before the end
	Examples  []Change // the first few changes
	// Recorded counts the decisions on the channel in the whole journal:
	// Decisions, and those after a stop.
	Recorded int
	// Channels counts the recorded decisions per channel, the channel's
	// included: where to look when it has none.
	Channels map[engine.ChannelName]int
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
	Chosen    string // the worker the journal's router chose
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
				if !yield(Decision{Line: line, Selection: in, Chosen: op.WorkerID}) {
					return
				}
			}
		}
	}
}

// WhatIf re-runs every recorded decision on channel, as ops yields them with
// their lines (Reader.All), through r, with the same request, candidates,
// excluded ids, attempt and conversation id (so seeded random draws are the
// same), and reports which would change. It holds the requests of the
// channel's open conversations, not the journal.
func WhatIf(ctx context.Context, ops iter.Seq2[int, engine.Operation], channel engine.ChannelName, r engine.Router, opts WhatIfOptions) WhatIfReport {
	rep := WhatIfReport{Channels: map[engine.ChannelName]int{}}
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
		if err == nil {
			// An id that is not a candidate fails the router, as in the
			// engine; none, or a full worker, is a proposal that differs.
			if _, why := engine.CheckDecision(in.Candidates, d); errors.Is(why, engine.ErrRouting) {
				err = why
			}
		}
		if err == nil && d.WorkerID == dec.Chosen {
			continue
		}
		rep.Changed++
		if err != nil {
			rep.Errors++
			if errors.Is(err, engine.ErrRouterTimeout) {
				rep.Timeouts++
			}
		}
		if len(rep.Examples) < opts.Keep {
			rep.Examples = append(rep.Examples, Change{Line: dec.Line, WorkflowID: in.WorkflowID,
				ConversationID: in.ConversationID, Attempt: in.Attempt, Recorded: dec.Chosen, Proposed: d.WorkerID, Err: err})
		}
	}
	return rep
}
