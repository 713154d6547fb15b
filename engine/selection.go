package engine

import (
	"fmt"
	"slices"
)

// NewSelection builds what a router is asked for one attempt of a
// conversation: the request and its workflow, the channel, the conversation
// id and attempt, the excluded ids, and the candidates, which are ws
// without the excluded workers, in order. With nothing excluded the
// candidates are ws itself, so that the dispatcher's path allocates nothing
// here. What asks a router as the dispatcher would (a command line, a
// replay of a journal) builds its selection with it too, so that the
// router sees the same.
func NewSelection(ch ChannelName, conversationID string, attempt int, req ActivityRequest, ws []Worker, excluded []string) Selection {
	return Selection{
		WorkflowID:     req.WorkflowID,
		Channel:        ch,
		ConversationID: conversationID,
		Attempt:        attempt,
		Request:        req,
		Candidates:     slices.Clip(withoutExcluded(ws, excluded)),
		Excluded:       slices.Clip(excluded),
	}
}

// WorkersOf returns views as workers with no participant, as a router
// sees workers recorded in a journal or given on a command line; nil for
// none.
func WorkersOf(views []ConsumerStateView) []Worker {
	if len(views) == 0 {
		return nil
	}
	out := make([]Worker, len(views))
	for i, v := range views {
		out[i] = Worker{State: v}
	}
	return out
}

// CheckDecision judges a router's answer dec to a selection of cands, as
// the dispatcher does before it links a worker. It returns the chosen
// candidate, and an error when no worker can take the activity by that
// answer: one that wraps [ErrNoWorkers] when the router chose none, or a
// worker with no free slot (returned with the error: the router declined);
// one that wraps [ErrRouting] when it chose an id that is not a candidate
// (the router failed).
func CheckDecision(cands []Worker, dec Decision) (Worker, error) {
	if dec.WorkerID == "" {
		return Worker{}, choseNone(dec.Version, cands)
	}
	w, ok := findWorker(cands, dec.WorkerID)
	if !ok {
		return Worker{}, fmt.Errorf("%w: router %s chose %q, which is not a candidate (candidates: %s)",
			ErrRouting, versionText(dec.Version), dec.WorkerID, workerIDs(cands))
	}
	if !w.State.HasCapacity() {
		return w, choseFull(dec.Version, w)
	}
	return w, nil
}

// choseFull is the error of a router that chose a worker with no free
// slot.
func choseFull(v RouterVersion, w Worker) error {
	return fmt.Errorf("%w: %s %s chose worker %s, which is full (%d of %d slots in flight)",
		ErrNoWorkers, routerWord(v), versionText(v), w.ID(), w.State.InFlight, w.State.MaxInFlight)
}
