package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/scenario"
)

const testUsage = `Usage: dispatch test [DIR|FILE]... [-update] [-run REGEXP] [-json] [-v]

Runs golden scenarios: each NAME.yaml names a config (config: FILE) or
declares channels inline, scripted workers (what each does with its 1st,
2nd, … request: complete, fail, exit or hang, with a latency) and steps
(requests, script swaps, workers added or removed, a replay). Running one
gives its journal with times removed, conversation ids numbered c1, c2, …,
router versions numbered v1, v2, … and paths relative to the scenario; it
must equal NAME.golden.jsonl beside it. On a difference, prints what
changed field by field, operation by operation (op 7 worker_selected:
worker_id "eu-1" → "eu-2"), at most a screenful; -v prints the whole line
diff (- golden, + run) instead. The format is in docs/scenarios.md.

A request step may say what it expects, beside the request:
  expect: {worker: eu-1, outcome: completed, attempts: 2, reroutes: 1}
(outcome: completed, failed, no_workers, timeout, backlog_full,
routing_failed or cancelled). Each unmet expectation is printed with the
request's line, what happened and what was wanted:
  s.yaml:12: wf-1: worker eu-2, want eu-1; outcome completed
A scenario with expectations and no NAME.golden.jsonl passes on its
expectations alone; -update writes no golden for it.

Each step may take the scenario's timeout (its timeout key, 5s by
default) to come to rest; a step that hangs fails with its line.

With no DIR, runs testdata/scenarios. A DIR holds scenarios directly (not
in subdirectories).

Flags:
  -update          write the golden journals from the runs instead of comparing
  -run REGEXP      only the scenarios whose name matches
  -json            one JSON event per scenario, one a line, instead of text:
                   {"scenario","file","status":"pass|fail|updated|error",
                    "elapsed_seconds","failures":[{"file","line","message"[,"diff","changes"]}]}
                   (error: the scenario did not load or run)
  -v               on a difference from the golden journal, the whole line diff

Exit codes: 0 every scenario passed (or was updated), 1 a scenario failed
or did not load, 2 usage.

Examples:
  dispatch test
  dispatch test testdata/scenarios -run 'reroute|timeout'
  dispatch test my-scenarios -update
  dispatch test my-scenarios -json | jq 'select(.status != "pass")'
`

func runTest(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("test", testUsage, stderr)
	update := fs.Bool("update", false, "")
	runFlag := fs.String("run", "", "")
	jsonOut := fs.Bool("json", false, "")
	verbose := fs.Bool("v", false, "")
	// Scenario paths may come before or after the flags.
	var dirs []string
	for len(args) > 0 {
		err := fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			fmt.Fprint(stdout, testUsage)
			return exitOK
		case err != nil:
			fmt.Fprintf(stderr, "run \"%s --help\" for usage\n", fs.Name())
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		dirs = append(dirs, fs.Arg(0))
		args = fs.Args()[1:]
	}
	var run *regexp.Regexp
	if *runFlag != "" {
		var err error
		if run, err = regexp.Compile(*runFlag); err != nil {
			fmt.Fprintf(stderr, "dispatch test: -run: %v\n", err)
			return exitUsage
		}
	}
	if len(dirs) == 0 {
		dirs = []string{"testdata/scenarios"}
	}
	files, err := scenario.Find(dirs, run)
	if err != nil {
		fmt.Fprintf(stderr, "dispatch test: %v\n", err)
		return exitError
	}
	if len(files) == 0 {
		if run != nil {
			fmt.Fprintf(stderr, "dispatch test: no scenario in %s matches -run %q\n", strings.Join(dirs, ", "), *runFlag)
		} else {
			fmt.Fprintf(stderr, "dispatch test: no scenario (*.yaml) in %s\n", strings.Join(dirs, ", "))
		}
		return exitError
	}
	passed, failed := 0, 0
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for _, f := range files {
		start := time.Now()
		res := scenario.Check(context.Background(), f, *update)
		if res.Passed() {
			passed++
		} else {
			failed++
		}
		if *jsonOut {
			if err := enc.Encode(testEventOf(f, res, time.Since(start))); err != nil {
				fmt.Fprintf(stderr, "dispatch test: %v\n", err)
				return exitError
			}
			continue
		}
		printTestResult(stdout, f, res, *verbose)
	}
	if !*jsonOut {
		fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	}
	if failed > 0 {
		return exitError
	}
	return exitOK
}

// maxChangesShown is how many field changes a failing scenario shows
// without -v: a screenful.
const maxChangesShown = 20

// printTestResult writes what came of one scenario: ok, updated, or FAIL
// with each unmet expectation, the difference from the golden journal
// (field by field, or with verbose the whole diff) or why it did not load
// or run.
func printTestResult(w io.Writer, f string, res scenario.Result, verbose bool) {
	if res.Err != nil {
		fmt.Fprintf(w, "FAIL %s\n", f)
		var es config.Errors
		if errors.As(res.Err, &es) {
			for _, e := range es {
				fmt.Fprintf(w, "     %v\n", e)
			}
		} else {
			fmt.Fprintf(w, "     %v\n", res.Err)
		}
		return
	}
	if res.Updated {
		fmt.Fprintf(w, "updated %s\n", res.Golden)
	}
	if n := len(res.Failures); n > 0 {
		fmt.Fprintf(w, "FAIL %s: %d %s not met:\n", f, n, plural(n, "expectation", "expectations"))
		for _, fl := range res.Failures {
			fmt.Fprintf(w, "     %v\n", fl)
		}
	}
	switch {
	case res.Diff != "" && !res.Updated:
		if verbose || len(res.Changes) == 0 {
			fmt.Fprintf(w, "FAIL %s: the run differs from %s (- golden, + run):\n", f, res.Golden)
			for _, line := range strings.Split(strings.TrimSuffix(res.Diff, "\n"), "\n") {
				fmt.Fprintf(w, "     %s\n", line)
			}
		} else {
			fmt.Fprintf(w, "FAIL %s: the run differs from %s (golden → run):\n", f, res.Golden)
			for i, c := range res.Changes {
				if i == maxChangesShown {
					fmt.Fprintf(w, "     … %d more; -v shows the whole diff\n", len(res.Changes)-i)
					break
				}
				fmt.Fprintf(w, "     %s\n", c)
			}
		}
		fmt.Fprintf(w, "     to accept the run: dispatch test %s -update\n", f)
	case res.Passed() && !res.Updated:
		fmt.Fprintf(w, "ok   %s\n", f)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// testEvent is what dispatch test -json writes for a scenario.
type testEvent struct {
	Scenario string        `json:"scenario"`
	File     string        `json:"file"`
	Status   string        `json:"status"` // pass, fail, updated or error
	Elapsed  float64       `json:"elapsed_seconds"`
	Failures []testFailure `json:"failures,omitempty"`
}

// testFailure is one reason a scenario failed: an unmet expectation (at
// its request's line), a difference from the golden journal (Diff), or a
// problem that kept it from loading or running.
type testFailure struct {
	File       string   `json:"file,omitempty"`
	Line       int      `json:"line,omitempty"`
	WorkflowID string   `json:"workflow_id,omitempty"`
	Message    string   `json:"message"`
	Diff       string   `json:"diff,omitempty"`
	Changes    []string `json:"changes,omitempty"`
}

func testEventOf(f string, res scenario.Result, elapsed time.Duration) testEvent {
	ev := testEvent{Scenario: strings.TrimSuffix(filepath.Base(f), ".yaml"), File: f, Elapsed: elapsed.Seconds()}
	if res.Err != nil {
		ev.Status = "error"
		var es config.Errors
		if errors.As(res.Err, &es) {
			for _, e := range es {
				ev.Failures = append(ev.Failures, testFailure{File: e.File, Line: e.Line, Message: e.Msg})
			}
		} else {
			ev.Failures = append(ev.Failures, testFailure{File: f, Message: res.Err.Error()})
		}
		return ev
	}
	for _, fl := range res.Failures {
		ev.Failures = append(ev.Failures, testFailure{File: fl.File, Line: fl.Line, WorkflowID: fl.WorkflowID, Message: fl.Message()})
	}
	if res.Diff != "" && !res.Updated {
		ev.Failures = append(ev.Failures, testFailure{File: res.Golden,
			Message: "the run differs from the golden journal (- golden, + run)", Diff: res.Diff, Changes: res.Changes})
	}
	switch {
	case !res.Passed():
		ev.Status = "fail"
	case res.Updated:
		ev.Status = "updated"
	default:
		ev.Status = "pass"
	}
	return ev
}
