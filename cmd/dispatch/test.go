package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/scenario"
)

const testUsage = `Usage: dispatch test [DIR|FILE]... [-update] [-run REGEXP]

Runs golden scenarios: each NAME.yaml names a config (config: FILE) or
declares channels inline, scripted workers (what each does with its 1st,
2nd, … request: complete, fail, exit or hang, with a latency) and steps
(requests, script swaps, workers added or removed, a replay). Running one
gives its journal with times removed, conversation ids numbered c1, c2, …,
router versions numbered v1, v2, … and paths relative to the scenario; it
must equal NAME.golden.jsonl beside it. On a difference, prints a
line diff (- golden, + run). The format is in docs/scenarios.md.

With no DIR, runs testdata/scenarios. A DIR holds scenarios directly (not
in subdirectories).

Flags:
  -update          write the golden journals from the runs instead of comparing
  -run REGEXP      only the scenarios whose name matches

Exit codes: 0 every scenario passed (or was updated), 1 a scenario failed
or did not load, 2 usage.

Examples:
  dispatch test
  dispatch test testdata/scenarios -run 'reroute|timeout'
  dispatch test my-scenarios -update
`

func runTest(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("test", testUsage, stderr)
	update := fs.Bool("update", false, "")
	runFlag := fs.String("run", "", "")
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
	for _, f := range files {
		res := scenario.Check(context.Background(), f, *update)
		switch {
		case res.Err != nil:
			failed++
			fmt.Fprintf(stdout, "FAIL %s\n", f)
			var es config.Errors
			if errors.As(res.Err, &es) {
				for _, e := range es {
					fmt.Fprintf(stdout, "     %v\n", e)
				}
			} else {
				fmt.Fprintf(stdout, "     %v\n", res.Err)
			}
		case res.Updated:
			passed++
			fmt.Fprintf(stdout, "updated %s\n", res.Golden)
		case res.Diff != "":
			failed++
			fmt.Fprintf(stdout, "FAIL %s: the run differs from %s (- golden, + run):\n", f, res.Golden)
			for _, line := range strings.Split(strings.TrimSuffix(res.Diff, "\n"), "\n") {
				fmt.Fprintf(stdout, "     %s\n", line)
			}
			fmt.Fprintf(stdout, "     to accept the run: dispatch test %s -update\n", f)
		default:
			passed++
			fmt.Fprintf(stdout, "ok   %s\n", f)
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return exitError
	}
	return exitOK
}
