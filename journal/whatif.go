package journal

import (
	"context"
	"errors"

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
}

// WhatIfOptions tune WhatIf.
type WhatIfOptions struct {
	Lines []int // the ops' line numbers; nil: their index + 1
	Keep  int   // how many changes to keep as examples
	// MaxTimeouts, if positive, stops the run after that many decisions on
	// which the router timed out (errors.Is ErrTimeout): a script stuck in
	// a loop would otherwise cost its whole deadline on every decision.
	MaxTimeouts int
	// ErrTimeout is the error a router's timeout matches.
	ErrTimeout error
}

// WhatIf re-runs every recorded decision on channel through r, with the
// same request, candidates, excluded ids, attempt and conversation id (so
// seeded random draws are the same), and reports which would change.
func WhatIf(ctx context.Context, ops []engine.Operation, channel engine.ChannelName, r engine.Router, opts WhatIfOptions) WhatIfReport {
	requests := map[string]engine.ActivityRequest{}
	var rep WhatIfReport
	for i, op := range ops {
		if op.Channel != channel {
			continue
		}
		switch op.Kind {
		case engine.OpConversationOpened:
			requests[op.ConversationID] = op.Request
		case engine.OpWorkerSelected:
			if opts.MaxTimeouts > 0 && rep.Timeouts >= opts.MaxTimeouts {
				rep.Stopped = true
				return rep
			}
			rep.Decisions++
			in := engine.Selection{
				WorkflowID:     op.WorkflowID,
				Channel:        op.Channel,
				ConversationID: op.ConversationID,
				Attempt:        op.Attempt,
				Request:        requests[op.ConversationID],
				Excluded:       op.Excluded,
			}
			for _, v := range op.Candidates {
				in.Candidates = append(in.Candidates, engine.Worker{ID: v.ID, State: v})
			}
			d, err := r.Select(ctx, in)
			if err == nil && d.WorkerID == op.WorkerID {
				continue
			}
			rep.Changed++
			if err != nil {
				rep.Errors++
				if opts.ErrTimeout != nil && errors.Is(err, opts.ErrTimeout) {
					rep.Timeouts++
				}
			}
			if len(rep.Examples) < opts.Keep {
				line := i + 1
				if opts.Lines != nil {
					line = opts.Lines[i]
				}
				rep.Examples = append(rep.Examples, Change{Line: line, WorkflowID: op.WorkflowID,
					ConversationID: op.ConversationID, Attempt: op.Attempt, Recorded: op.WorkerID, Proposed: d.WorkerID, Err: err})
			}
		}
	}
	return rep
}

// Decisions counts the recorded routing decisions (worker_selected) per
// channel.
func Decisions(ops []engine.Operation) map[engine.ChannelName]int {
	out := map[engine.ChannelName]int{}
	for _, op := range ops {
		if op.Kind == engine.OpWorkerSelected {
			out[op.Channel]++
		}
	}
	return out
}
