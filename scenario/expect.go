package scenario

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
)

// Expect is what a request step expects of its dispatch, beside the
// golden journal (or instead of it). A field left unset is not checked.
type Expect struct {
	Worker   *string // the worker that answered ("" for none)
	Outcome  string  // one of Outcomes, or "" for any
	Attempts *int    // the workers selected, the first included
	Reroutes *int    // the attempts that followed a worker's exit
}

// Outcomes are what a dispatch may come to, as an expect names it:
// completed; failed (the worker answered Failed); no_workers; timeout
// (start-to-close, schedule-to-close or schedule-to-start);
// backlog_full; routing_failed (the script failed or chose a worker that
// was not a candidate); cancelled (an async request the scenario
// cancelled at its end). The kinds of protocol's answers, but for the
// first two and the last.
var Outcomes = []string{"completed", "failed", "no_workers", "timeout", "backlog_full", "routing_failed", "cancelled"}

// Happened is what a request's dispatch came to.
type Happened struct {
	Worker   string // the worker that answered, or that had the activity at the end, or ""
	Outcome  string // one of Outcomes, or another protocol kind (bad_request, internal…)
	Attempts int
	Reroutes int
	Err      string // the dispatch's error, "" when it completed
}

// Failure is an expectation a request step did not meet.
type Failure struct {
	File       string // the scenario
	Line       int    // the request step's line
	WorkflowID string
	Want       Expect
	Got        Happened
}

// Error renders the failure as FILE:LINE: WORKFLOW: what differs, then
// what else happened, e.g. "s.yaml:12: wf-1: worker eu-2, want eu-1;
// outcome completed".
func (f Failure) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", f.File, f.Line, f.WorkflowID, f.Message())
}

// Message is the failure without its place: each field that differs, with
// what was expected, then the outcome and the other fields expected.
func (f Failure) Message() string {
	msg, _ := compare(f.Want, f.Got)
	return msg
}

type expectYAML struct {
	Worker   *string `yaml:"worker"`
	Outcome  *string `yaml:"outcome"`
	Attempts *int    `yaml:"attempts"`
	Reroutes *int    `yaml:"reroutes"`
}

// expect checks an expect mapping of the step at line.
func (l *loader) expect(e *expectYAML, line int) *Expect {
	out := &Expect{Worker: e.Worker, Attempts: e.Attempts, Reroutes: e.Reroutes}
	if e.Worker == nil && e.Outcome == nil && e.Attempts == nil && e.Reroutes == nil {
		l.errorf(line, "expect: want at least one of worker, outcome, attempts or reroutes")
	}
	if e.Outcome != nil {
		out.Outcome = *e.Outcome
		if !slices.Contains(Outcomes, out.Outcome) {
			l.errorf(line, "expect: outcome %q: want one of %s", out.Outcome, strings.Join(Outcomes, ", "))
		}
	}
	if e.Attempts != nil && *e.Attempts < 0 {
		l.errorf(line, "expect: attempts %d: want 0 or more", *e.Attempts)
	}
	if e.Reroutes != nil && *e.Reroutes < 0 {
		l.errorf(line, "expect: reroutes %d: want 0 or more", *e.Reroutes)
	}
	return out
}

// OutcomeOf names what a dispatch that returned err came to (see
// [Outcomes]). It follows the kinds of the service's answers.
func OutcomeOf(err error) string {
	switch kind := protocol.KindOf(err); {
	case err == nil:
		return "completed"
	case kind == protocol.KindActivityFailed:
		return "failed"
	case errors.Is(err, context.Canceled): // whatever the dispatch was doing (a script it cancelled is a routing error)
		return "cancelled"
	default:
		return kind
	}
}

// happened is what the dispatch of conversation conv came to, its
// re-routes counted from ops: the worker_selected operations that follow
// a worker_exited one (with, perhaps, a wait in the backlog between).
func happened(out engine.Outcome, err error, ops []engine.Operation) Happened {
	h := Happened{Worker: out.WorkerID, Outcome: OutcomeOf(err), Attempts: out.Attempts}
	if err != nil {
		h.Err = err.Error()
	}
	afterExit := false
	for _, op := range ops {
		if op.ConversationID != out.ConversationID || out.ConversationID == "" {
			continue
		}
		switch op.Kind {
		case engine.OpWorkerExited:
			afterExit = true
		case engine.OpWorkerSelected:
			if afterExit {
				h.Reroutes++
			}
			afterExit = false
		}
	}
	return h
}

// compare checks got against want and describes it: the fields that
// differ ("worker eu-2, want eu-1"), then the outcome and the other fields
// expected, as they were. ok is true when nothing differs.
func compare(want Expect, got Happened) (msg string, ok bool) {
	worker := func(id string) string {
		if id == "" {
			return "none"
		}
		return id
	}
	outcome := got.Outcome
	if got.Err != "" && got.Outcome != "failed" {
		outcome += " (" + got.Err + ")"
	}
	var differ, same []string
	add := func(expected bool, equal bool, name, gotText, wantText string) {
		switch {
		case !expected:
		case !equal:
			differ = append(differ, fmt.Sprintf("%s %s, want %s", name, gotText, wantText))
		default:
			same = append(same, name+" "+gotText)
		}
	}
	add(want.Worker != nil, want.Worker == nil || *want.Worker == got.Worker, "worker", worker(got.Worker), worker(deref(want.Worker)))
	add(true, want.Outcome == "" || want.Outcome == got.Outcome, "outcome", outcome, want.Outcome)
	add(want.Attempts != nil, want.Attempts == nil || *want.Attempts == got.Attempts, "attempts",
		fmt.Sprint(got.Attempts), fmt.Sprint(deref(want.Attempts)))
	add(want.Reroutes != nil, want.Reroutes == nil || *want.Reroutes == got.Reroutes, "reroutes",
		fmt.Sprint(got.Reroutes), fmt.Sprint(deref(want.Reroutes)))
	return strings.Join(append(differ, same...), "; "), len(differ) == 0
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// check returns the failure of a request step's expectation, or nil.
func check(s *Scenario, st Step, h Happened) *Failure {
	if st.Expect == nil {
		return nil
	}
	if _, ok := compare(*st.Expect, h); ok {
		return nil
	}
	return &Failure{File: s.File, Line: st.Line, WorkflowID: st.Request.Request.WorkflowID, Want: *st.Expect, Got: h}
}
