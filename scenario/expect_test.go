package scenario_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/scenario"
)

func ptr[T any](v T) *T { return &v }

// TestLoadExpect: an expect beside a request reaches its step; a bad one
// is refused at its line, as the rest of the file is.
func TestLoadExpect(t *testing.T) {
	head := `version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: lua, source: "function route(r, c) return c[1].id end"}}
workers:
  - {channel: prod/email, id: w1, script: [{complete: ok}]}
steps:
`
	for _, tc := range []struct {
		name, steps string
		want        *scenario.Expect // nil: an error is wanted
		errs        []string
	}{
		{"all the keys", "  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}\n    expect: {worker: w1, outcome: completed, attempts: 2, reroutes: 1}\n",
			&scenario.Expect{Worker: ptr("w1"), Outcome: "completed", Attempts: ptr(2), Reroutes: ptr(1)}, nil},
		{"no worker", "  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}\n    expect: {worker: \"\", outcome: no_workers}\n",
			&scenario.Expect{Worker: ptr(""), Outcome: "no_workers"}, nil},
		{"outcome only", "  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}\n    expect: {outcome: timeout}\n",
			&scenario.Expect{Outcome: "timeout"}, nil},
		{"unknown key", "  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}\n    expect: {worker: w1, wroker: w2}\n",
			nil, []string{`:8: expect: unknown key "wroker" (known: attempts, outcome, reroutes, worker)`}},
		{"unknown outcome", "  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}\n    expect: {outcome: done}\n",
			nil, []string{`:7: expect: outcome "done": want one of completed, failed, no_workers, timeout, backlog_full, routing_failed, cancelled`}},
		{"empty", "  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}\n    expect: {}\n",
			nil, []string{":7: expect: want at least one of worker, outcome, attempts or reroutes"}},
		{"negative counts", "  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}\n    expect: {attempts: -1, reroutes: -2}\n",
			nil, []string{":7: expect: attempts -1: want 0 or more", ":7: expect: reroutes -2: want 0 or more"}},
		{"not a number", "  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}\n    expect: {attempts: two}\n",
			nil, []string{":8: cannot unmarshal"}},
		{"beside another step", "  - release: {channel: prod/email, id: w1}\n    expect: {outcome: completed}\n",
			nil, []string{":7: expect: only a request step may say what it expects"}},
		{"a bad timeout", "  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}\ntimeout: soon\n",
			nil, []string{`:8: timeout "soon": want a positive duration such as 5s`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "s.yaml")
			if err := os.WriteFile(p, []byte(head+tc.steps), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := scenario.Load(p)
			if tc.want == nil {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tc.errs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Steps[0].Expect; got == nil || fmt.Sprint(expectText(*got)) != fmt.Sprint(expectText(*tc.want)) {
				t.Errorf("expect %v, want %v", expectText(deref(got)), expectText(*tc.want))
			}
			if !s.HasExpectations() || s.Timeout != scenario.DefaultTimeout {
				t.Errorf("HasExpectations %v, Timeout %s", s.HasExpectations(), s.Timeout)
			}
		})
	}
}

func deref[T any](p *T) T {
	var zero T
	if p != nil {
		zero = *p
	}
	return zero
}

// expectText renders an expect with its pointers followed.
func expectText(e scenario.Expect) string {
	show := func(p any) string {
		switch p := p.(type) {
		case *string:
			if p != nil {
				return fmt.Sprintf("%q", *p)
			}
		case *int:
			if p != nil {
				return fmt.Sprint(*p)
			}
		}
		return "-"
	}
	return fmt.Sprintf("worker %s outcome %q attempts %s reroutes %s", show(e.Worker), e.Outcome, show(e.Attempts), show(e.Reroutes))
}

// TestFailureMessage: what differs first, with what was expected, then
// the outcome and the other fields expected, as they were.
func TestFailureMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		want scenario.Expect
		got  scenario.Happened
		msg  string
	}{
		{"worker", scenario.Expect{Worker: ptr("eu-1"), Outcome: "completed"},
			scenario.Happened{Worker: "eu-2", Outcome: "completed", Attempts: 1},
			"worker eu-2, want eu-1; outcome completed"},
		{"no worker", scenario.Expect{Worker: ptr("eu-1")},
			scenario.Happened{Outcome: "no_workers", Err: "dispatch prod/email workflow wf-1: NoWorkersAvailable"},
			"worker none, want eu-1; outcome no_workers (dispatch prod/email workflow wf-1: NoWorkersAvailable)"},
		{"counts", scenario.Expect{Worker: ptr("w2"), Attempts: ptr(1), Reroutes: ptr(0)},
			scenario.Happened{Worker: "w2", Outcome: "completed", Attempts: 2, Reroutes: 1},
			"attempts 2, want 1; reroutes 1, want 0; worker w2; outcome completed"},
		{"outcome", scenario.Expect{Outcome: "completed"},
			scenario.Happened{Worker: "w1", Outcome: "failed", Attempts: 1, Err: "activity failed"},
			"outcome failed, want completed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := scenario.Failure{File: "s.yaml", Line: 12, WorkflowID: "wf-1", Want: tc.want, Got: tc.got}
			if got := f.Message(); got != tc.msg {
				t.Errorf("Message() = %q, want %q", got, tc.msg)
			}
			if got, want := f.Error(), "s.yaml:12: wf-1: "+tc.msg; got != want {
				t.Errorf("Error() = %q, want %q", got, want)
			}
		})
	}
}

func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "completed"},
		{&engine.DispatchError{Err: engine.ErrActivityFailed}, "failed"},
		{&engine.DispatchError{Err: engine.ErrNoWorkers}, "no_workers"},
		{&engine.DispatchError{Err: engine.ErrBacklogFull}, "backlog_full"},
		{&engine.DispatchError{Err: fmt.Errorf("%w: %w", engine.ErrNoWorkers, engine.ErrScheduleToStartTimeout)}, "timeout"},
		{&engine.DispatchError{Err: engine.ErrStartToCloseTimeout}, "timeout"},
		{&engine.DispatchError{Err: engine.ErrRouting}, "routing_failed"},
		{&engine.DispatchError{Err: context.Canceled}, "cancelled"},
		{&engine.DispatchError{Err: fmt.Errorf("%w: %w", engine.ErrRouting, context.Canceled)}, "cancelled"}, // cancelled while its script ran
		{errors.New("something else"), "internal"},
	} {
		if got := scenario.OutcomeOf(tc.err); got != tc.want {
			t.Errorf("OutcomeOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestCheckExpectations runs scenarios whose expectations are not met:
// each unmet one is a failure at its request's line, async ones included,
// and a scenario with expectations and no golden journal passes or fails
// on them alone, -update writing no golden for it.
func TestCheckExpectations(t *testing.T) {
	head := `version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: lua, source: "function route(r, c) return c[#c].id end"}}
workers:
  - {channel: prod/email, id: w1, script: [{exit: gone}]}
  - {channel: prod/email, id: w2, script: [{complete: ok}, {complete: ok, held: true}]}
steps:
`
	for _, tc := range []struct {
		name, steps string
		failures    []string
	}{
		{"met", `  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}
    expect: {worker: w2, outcome: completed, attempts: 1, reroutes: 0}
`, nil},
		{"not met", `  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}
    expect: {worker: w1, attempts: 1}
  - request: {channel: prod/email, workflow_id: wf-2, activity_type: send, async: true}
    expect: {outcome: failed}
  - release: {channel: prod/email, id: w2}
`, []string{
			"s.yaml:8: wf-1: worker w2, want w1; outcome completed; attempts 1",
			"s.yaml:10: wf-2: outcome completed, want failed",
		}},
		{"an async request cancelled at the end", `  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}
  - request: {channel: prod/email, workflow_id: wf-2, activity_type: send, async: true}
    expect: {outcome: completed}
`, []string{"s.yaml:9: wf-2: outcome cancelled (dispatch prod/email workflow wf-2 worker w2: context canceled), want completed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.yaml")
			if err := os.WriteFile(path, []byte(head+tc.steps), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, update := range []bool{false, true} {
				res := scenario.Check(context.Background(), path, update)
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				var got []string
				for _, f := range res.Failures {
					got = append(got, strings.TrimPrefix(f.Error(), filepath.Dir(path)+string(filepath.Separator)))
				}
				if strings.Join(got, "\n") != strings.Join(tc.failures, "\n") {
					t.Errorf("update %v: failures\n%s\nwant\n%s", update, strings.Join(got, "\n"), strings.Join(tc.failures, "\n"))
				}
				if res.Passed() != (len(tc.failures) == 0) || res.Golden != "" || res.Updated {
					t.Errorf("update %v: Passed %v, Golden %q, Updated %v", update, res.Passed(), res.Golden, res.Updated)
				}
			}
			if _, err := os.Stat(scenario.GoldenPath(path)); err == nil {
				t.Error("-update wrote a golden for a scenario with expectations and none")
			}
		})
	}
}
