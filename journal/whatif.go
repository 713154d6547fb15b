package journal

import (
	"context"

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
	Decisions int      // recorded decisions on the channel
	Changed   int      // decisions the other router makes differently (errors included)
	Errors    int      // decisions on which the other router failed
	Examples  []Change // the first few changes
}

// WhatIf re-runs every recorded decision on channel through r, with the
// same request, candidates, excluded ids, attempt and conversation id (so
// seeded random draws are the same), and reports which would change. lines
// are the ops' line numbers (nil if unknown); keep is how many changes to
// keep as examples.
func WhatIf(ctx context.Context, ops []engine.Operation, lines []int, channel engine.ChannelName, r engine.Router, keep int) WhatIfReport {
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
			}
			if len(rep.Examples) < keep {
				line := i + 1
				if lines != nil {
					line = lines[i]
				}
				rep.Examples = append(rep.Examples, Change{Line: line, WorkflowID: op.WorkflowID,
					ConversationID: op.ConversationID, Attempt: op.Attempt, Recorded: op.WorkerID, Proposed: d.WorkerID, Err: err})
			}
		}
	}
	return rep
}
