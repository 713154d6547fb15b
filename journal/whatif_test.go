package journal_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
)

// recordedDecision is one worker_selected of a made-up journal, with what
// the other router answers to it.
type recordedDecision struct {
	version  string // the recorded router's hash
	chosen   string // the recorded worker
	proposed string // the other router's answer
	err      error  // or its error
}

// decisionOps is a journal of one conversation per decision on channel,
// each with candidates w1 (free), w2 (free) and full (no free slot), and a
// router answering each as the decision says.
func decisionOps(ch engine.ChannelName, decs []recordedDecision) (iter.Seq2[int, engine.Operation], engine.Router) {
	answers := map[string]recordedDecision{}
	return func(yield func(int, engine.Operation) bool) {
		line := 0
		for i, d := range decs {
			conv := fmt.Sprintf("c%d", i+1)
			answers[conv] = d
			req := engine.ActivityRequest{WorkflowID: "wf-" + conv, ActivityType: "send", TaskQueue: ch.TaskQueue()}
			for _, op := range []engine.Operation{
				{Kind: engine.OpConversationOpened, WorkflowID: req.WorkflowID, ConversationID: conv, Channel: ch, Request: req},
				{Kind: engine.OpWorkerSelected, WorkflowID: req.WorkflowID, ConversationID: conv, Channel: ch, WorkerID: d.chosen,
					Attempt: 1, Router: engine.RouterVersion{Lang: "lua", Hash: d.version},
					Candidates: []engine.ConsumerStateView{{ID: "w1", MaxInFlight: 2}, {ID: "w2", MaxInFlight: 2},
						{ID: "full", InFlight: 1, MaxInFlight: 1, Tags: []string{"big"}}}},
			} {
				line++
				if !yield(line, op) {
					return
				}
			}
		}
	}, answerRouter(answers)
}

// answerRouter answers each conversation as its recorded decision says.
type answerRouter map[string]recordedDecision

func (r answerRouter) Select(_ context.Context, in engine.Selection) (engine.Decision, error) {
	d := r[in.ConversationID]
	return engine.Decision{WorkerID: d.proposed}, d.err
}

// TestWhatIfShifts: the decisions are counted per recorded version and
// worker, recorded and proposed, and the examples list the failures and
// nones before the changes of worker.
func TestWhatIfShifts(t *testing.T) {
	ch := channel(t)
	timeout := fmt.Errorf("script: %w", engine.ErrRouterTimeout)
	lua := func(hash string) engine.RouterVersion { return engine.RouterVersion{Lang: "lua", Hash: hash} }
	for _, tc := range []struct {
		name      string
		decs      []recordedDecision
		keep      int
		changed   int
		versions  []journal.VersionShift
		kinds     []journal.ChangeKind // of the examples, in order
		lines     []int                // of the examples
		errs, nos int
	}{
		{
			name: "the same decisions",
			decs: []recordedDecision{{"a", "w1", "w1", nil}, {"a", "w2", "w2", nil}},
			keep: 5,
			versions: []journal.VersionShift{{Router: lua("a"), Decisions: 2,
				Workers: []journal.WorkerShift{{"w1", 1, 1}, {"w2", 1, 1}}}},
		},
		{
			name:    "load moves from w1 to w2",
			decs:    []recordedDecision{{"a", "w1", "w2", nil}, {"a", "w1", "w2", nil}, {"a", "w2", "w2", nil}},
			keep:    5,
			changed: 2,
			versions: []journal.VersionShift{{Router: lua("a"), Decisions: 3, Changed: 2,
				Workers: []journal.WorkerShift{{"w1", 2, 0}, {"w2", 1, 3}}}},
			kinds: []journal.ChangeKind{journal.ChangeWorker, journal.ChangeWorker},
			lines: []int{2, 4},
		},
		{
			name: "split by the recorded version, in the order each first decided",
			decs: []recordedDecision{{"b", "w1", "w1", nil}, {"a", "w2", "w1", nil}, {"b", "w1", "w2", nil}},
			keep: 5, changed: 2,
			versions: []journal.VersionShift{
				{Router: lua("b"), Decisions: 2, Changed: 1, Workers: []journal.WorkerShift{{"w1", 2, 1}, {"w2", 0, 1}}},
				{Router: lua("a"), Decisions: 1, Changed: 1, Workers: []journal.WorkerShift{{"w1", 0, 1}, {"w2", 1, 0}}},
			},
			kinds: []journal.ChangeKind{journal.ChangeWorker, journal.ChangeWorker},
			lines: []int{4, 6},
		},
		{
			name: "failures and nones first, then changes, up to keep",
			decs: []recordedDecision{
				{"a", "w1", "w2", nil},           // line 2: changed
				{"a", "w1", "", nil},             // line 4: none
				{"a", "w1", "full", nil},         // line 6: a full worker is none
				{"a", "w2", "", timeout},         // line 8: timeout
				{"a", "w2", "", errors.New("x")}, // line 10: error
				{"a", "w2", "ghost", nil},        // line 12: not a candidate: error
			},
			keep: 4, changed: 6, errs: 3, nos: 2,
			versions: []journal.VersionShift{{Router: lua("a"), Decisions: 6, Changed: 6, Errors: 3, Timeouts: 1, Nones: 2,
				Workers: []journal.WorkerShift{{"w1", 3, 0}, {"w2", 3, 1}}}},
			kinds: []journal.ChangeKind{journal.ChangeNone, journal.ChangeNone, journal.ChangeTimeout, journal.ChangeError},
			lines: []int{4, 6, 8, 10},
		},
		{
			name: "no examples kept",
			decs: []recordedDecision{{"a", "w1", "w2", nil}},
			keep: 0, changed: 1,
			versions: []journal.VersionShift{{Router: lua("a"), Decisions: 1, Changed: 1,
				Workers: []journal.WorkerShift{{"w1", 1, 0}, {"w2", 0, 1}}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, r := decisionOps(ch, tc.decs)
			rep := journal.WhatIf(context.Background(), ops, ch, r, journal.WhatIfOptions{Keep: tc.keep})
			if rep.Decisions != len(tc.decs) || rep.Changed != tc.changed || rep.Errors != tc.errs || rep.Nones != tc.nos {
				t.Errorf("decisions %d, changed %d, errors %d, nones %d; want %d, %d, %d, %d",
					rep.Decisions, rep.Changed, rep.Errors, rep.Nones, len(tc.decs), tc.changed, tc.errs, tc.nos)
			}
			if !reflect.DeepEqual(rep.Versions, tc.versions) {
				t.Errorf("versions:\n got %+v\nwant %+v", rep.Versions, tc.versions)
			}
			var kinds []journal.ChangeKind
			var lines []int
			for _, c := range rep.Examples {
				kinds, lines = append(kinds, c.Kind), append(lines, c.Line)
			}
			if !reflect.DeepEqual(kinds, tc.kinds) || !reflect.DeepEqual(lines, tc.lines) {
				t.Errorf("examples: kinds %v at lines %v, want %v at %v", kinds, lines, tc.kinds, tc.lines)
			}
		})
	}
}

// TestWhatIfChangeShowsWhatTheRouterSaw: an example carries the request's
// key fields, the candidates without the excluded, and the version.
func TestWhatIfChangeShowsWhatTheRouterSaw(t *testing.T) {
	ch := channel(t)
	ops, r := decisionOps(ch, []recordedDecision{{"a", "w1", "full", nil}})
	rep := journal.WhatIf(context.Background(), ops, ch, r, journal.WhatIfOptions{Keep: 1})
	if len(rep.Examples) != 1 {
		t.Fatalf("examples: %+v", rep.Examples)
	}
	got := rep.Examples[0]
	want := journal.Change{Line: 2, Kind: journal.ChangeNone, Router: engine.RouterVersion{Lang: "lua", Hash: "a"},
		WorkflowID: "wf-c1", ConversationID: "c1", ActivityType: "send", Attempt: 1,
		Candidates: []engine.ConsumerStateView{{ID: "w1", MaxInFlight: 2}, {ID: "w2", MaxInFlight: 2},
			{ID: "full", InFlight: 1, MaxInFlight: 1, Tags: []string{"big"}}},
		Recorded: "w1", Proposed: "full"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example:\n got %+v\nwant %+v", got, want)
	}
	if s := rep.Versions[0].Share(1); s != 100 {
		t.Errorf("share of 1 of 1 = %v", s)
	}
	if s := journal.ChangeTimeout.String() + journal.ChangeWorker.String(); s != "timeoutchanged" {
		t.Errorf("kind names: %q", s)
	}
}
