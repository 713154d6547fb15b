package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aion-dispatch/dispatch/engine"
)

// ErrRefused is matched (errors.Is) by the error of a version the reload
// gate refuses.
var ErrRefused = errors.New("refused by the reload gate")

// GateReport is what the reload gate found on a version it let through.
type GateReport struct {
	Decisions int  // the decisions the version was run on
	Changed   int  // how many of them it decides differently
	None      int  // how many of them it chooses no worker on
	Lost      int  // how many of those chose a worker then
	Synthetic bool // the decisions were made up from the configured workers: the channel had no traffic yet
}

// String says it the way a log line does: "would change 12 of the last
// 256 decisions", or "passed 6 synthetic decisions", and how many of them
// it chooses no worker on, if any.
func (r GateReport) String() string {
	if r.Synthetic {
		s := fmt.Sprintf("passed %d synthetic decisions", r.Decisions)
		if r.None > 0 {
			s += fmt.Sprintf(", choosing no worker on %d of them", r.None)
		}
		return s
	}
	s := fmt.Sprintf("would change %d of the last %d decisions", r.Changed, r.Decisions)
	if r.Lost > 0 {
		s += fmt.Sprintf(", %d of them from a worker to none", r.Lost)
	}
	return s
}

// Worrying reports whether the version chooses no worker where one was
// chosen, or on every synthetic decision: legal (a script may hold work
// back), but each such dispatch fails with NoWorkersAvailable, so a log
// should say it louder.
func (r GateReport) Worrying() bool {
	return r.Lost > 0 || (r.Synthetic && r.Decisions > 0 && r.None == r.Decisions)
}

// GateError is why the reload gate refused a version: the first decision
// on which it failed, and how.
type GateError struct {
	Index     int // 1-based, among Total
	Total     int
	Synthetic bool
	// Where, if set, names the decision instead of its index: a journal's
	// FILE:LINE, say.
	Where  string
	Sample Sample
	Err    error // the script's error, timeout or bad decision
}

// Error names the failing case, then the script's error.
func (e *GateError) Error() string {
	return fmt.Sprintf("%v: on %s: %v", ErrRefused, e.Case(), e.Err)
}

// Case describes the failing decision: "recent decision 3 of 256
// (workflow wf-3, attempt 1, candidates [w1 0/4, w2 4/4])".
func (e *GateError) Case() string {
	where := fmt.Sprintf("recent decision %d of %d", e.Index, e.Total)
	switch {
	case e.Where != "":
		where = e.Where
	case e.Synthetic:
		where = fmt.Sprintf("synthetic decision %d of %d", e.Index, e.Total)
	}
	sel := e.Sample.Selection
	return fmt.Sprintf("%s (workflow %s, attempt %d, candidates [%s]%s)", where,
		sel.WorkflowID, sel.Attempt, describeCandidates(sel.Candidates), describeExcluded(sel.Excluded))
}

// Unwrap returns the script's error.
func (e *GateError) Unwrap() error { return e.Err }

// Is makes a GateError match ErrRefused.
func (e *GateError) Is(target error) bool { return target == ErrRefused }

// Gate runs r on each sample, as the channel would have, before r is put in
// service: a call that errors, runs past its deadline (twice: one timeout
// may be the machine's, not the script's) or returns an id that is not a
// candidate refuses r with a *GateError naming the first such sample. If
// ctx ends first, Gate returns ctx's error, which is no refusal. Otherwise the report says how many samples r decides differently
// from what was chosen then. Samples should come from the channel's slot
// ([Table.Recent]), or, before any traffic, from [SyntheticSamples].
func Gate(ctx context.Context, r engine.Router, samples []Sample, synthetic bool) (GateReport, error) {
	rep := GateReport{Decisions: len(samples), Synthetic: synthetic}
	for i, s := range samples {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		chosen, err := Decide(ctx, r, s.Selection)
		if errors.Is(err, ErrScriptTimeout) && ctx.Err() == nil {
			// A deadline is wall-clock time: one missed by a call that
			// was starved of CPU must not refuse a good version.
			chosen, err = Decide(ctx, r, s.Selection)
		}
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err() // the gate was stopped: not a refusal
			}
			return rep, &GateError{Index: i + 1, Total: len(samples), Synthetic: synthetic, Sample: s, Err: err}
		}
		if chosen != s.Chosen {
			rep.Changed++
		}
		if chosen == "" {
			rep.None++
			if s.Chosen != "" {
				rep.Lost++
			}
		}
	}
	return rep, nil
}

// Decide runs r on one selection as the reload gate does: it returns the id
// r chooses ("" for none), or r's error, or an error matching
// ErrBadDecision when the id is not among the candidates (the engine's
// decision check, [engine.CheckDecision]). Choosing none, or a full
// worker, is a decision the gate accepts: the engine waits on it.
func Decide(ctx context.Context, r engine.Router, sel engine.Selection) (string, error) {
	sel.Candidates = slices.Clone(sel.Candidates) // a script must not see another's edits
	d, err := r.Select(ctx, sel)
	if err != nil {
		return "", err
	}
	if _, err := engine.CheckDecision(sel.Candidates, d); errors.Is(err, engine.ErrRouting) {
		return "", fmt.Errorf("%w: %w", ErrBadDecision, err)
	}
	return d.WorkerID, nil
}

// SyntheticSamples makes decisions for the reload gate of a channel that has
// had no traffic yet, from the workers it is configured with (ids, capacities
// and tags; three plain one-slot workers when it has none): every worker
// idle; half full; all full; and, for each worker (the first and last
// maxExclusionSamples/2 of a long list), a second attempt with that worker
// excluded. Requests carry a JSON object input ("{}"), so a
// script that needs a field of the input must cope with its absence, as it
// must with real traffic. Chosen is "" in every sample.
func SyntheticSamples(channel engine.ChannelName, workers []engine.ConsumerStateView) []Sample {
	if len(workers) == 0 {
		workers = []engine.ConsumerStateView{{ID: "w1", MaxInFlight: 1}, {ID: "w2", MaxInFlight: 1}, {ID: "w3", MaxInFlight: 1}}
	}
	req := engine.ActivityRequest{WorkflowID: "gate-wf", ActivityType: "gate", TaskQueue: channel.TaskQueue(),
		Input: engine.Payload{ContentType: "application/json", Data: []byte("{}")}}
	load := func(fill func(max int) int) []engine.Worker {
		out := make([]engine.Worker, len(workers))
		for i, v := range workers {
			v.InFlight = fill(max(v.MaxInFlight, 1))
			out[i] = engine.Worker{State: v}
		}
		return out
	}
	sample := func(n int, cands []engine.Worker, excluded []string) Sample {
		r := req
		r.WorkflowID = fmt.Sprintf("gate-wf-%d", n)
		return Sample{Selection: engine.Selection{WorkflowID: r.WorkflowID, Channel: channel,
			ConversationID: fmt.Sprintf("gate-%d", n), Attempt: len(excluded) + 1, Request: r,
			Candidates: cands, Excluded: excluded}}
	}
	out := []Sample{
		sample(1, load(func(int) int { return 0 }), nil),
		sample(2, load(func(m int) int { return m / 2 }), nil),
		sample(3, load(func(m int) int { return m }), nil),
	}
	if len(workers) > 1 {
		for i, w := range workers {
			if len(workers) > maxExclusionSamples && i >= maxExclusionSamples/2 && i < len(workers)-maxExclusionSamples/2 {
				continue
			}
			cands := slices.Delete(load(func(int) int { return 0 }), i, i+1)
			out = append(out, sample(len(out)+1, cands, []string{w.ID}))
		}
	}
	return out
}

// maxExclusionSamples bounds the synthetic samples that exclude one worker:
// each holds every other worker.
const maxExclusionSamples = 16

func describeCandidates(ws []engine.Worker) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprintf("%s %d/%d", w.ID(), w.State.InFlight, w.State.MaxInFlight)
	}
	return strings.Join(parts, ", ")
}

func describeExcluded(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return "; excluded [" + strings.Join(ids, ", ") + "]"
}
