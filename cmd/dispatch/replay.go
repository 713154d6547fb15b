package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/regularfile"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/router"
)

const replayUsage = `Usage: dispatch replay --journal FILE
       dispatch replay --journal FILE --what-if SCRIPT --channel NS/QUEUE [--examples N] [--timeout D]
                       [--json] [--fail-on-change PCT]

Checks a journal (seq 1, 2, 3, … with no line missing, every conversation
opened once, its steps in a legal order, closed exactly once; each selection
of one of its candidates, never of an excluded or exited worker; every step
of an attempt from the worker it went to; a close with the attempt it ended
in and the worker's answer as its result; a wait in a channel's backlog
only before a selection or a close, of the attempt it waits to start, and
its length, waited, only on the selection that ends it) and replays every
recorded dispatch through the engine in replay mode, proving that no
worker, router or conversation is touched. Prints a summary per channel
and per worker and, when activities waited in a backlog, per channel the
waits, the p50 and p99 of how long those that went to a worker waited,
and the schedule-to-start timeouts. What a crash leaves (a torn last line,
conversations never closed) is reported as a warning and not replayed. The
journal is read once, line by line, holding only what is open at once
(conversations not yet closed), so its size does not matter.

With --what-if, re-runs every recorded routing decision on the channel (a
selection; a wait is not one) with the same request, candidates, excluded
workers, attempt and seeded random draws through another script, and
reports how many decisions would change; per recorded router version (a
journal spans reloads), a table of the workers with the decisions the
recorded router gave each and those the script would, with their shares
of the version's decisions and the difference; then the first few changed
decisions, those where the script fails, times out or chooses none (or a
full worker) first, each with its journal line, the request's workflow,
activity type, attempt and excluded workers, and the candidates it saw
(id in_flight/max_in_flight [tags]). Worker load is not re-simulated:
every decision is replayed against the load recorded with it, though a
changed decision would have changed the load later decisions saw. A way
to test a new routing script against yesterday's traffic before
deploying it.

Flags:
  --journal FILE        the journal (JSON lines)
  --what-if SCRIPT      a .lua or .expr routing script to compare
  --channel NS/QUEUE    the channel whose decisions to compare (with --what-if;
                        aion.dispatch.NS.QUEUE as in the journal works too)
  --examples N          how many changed decisions to show (default 5)
  --timeout D           the script's deadline per decision (default 50ms, as
                        a channel's script_timeout); it stops after 5 timeouts
  --json                the what-if's report as one JSON document on stdout
                        (docs/scripting.md, Machine-readable output)
  --fail-on-change PCT  with --what-if, also exit 1 when more than PCT percent
                        (0 to 100) of the decisions change: a gate for CI

Exit codes: 0 consistent (or the what-if ran without a script error, and
changed no more than --fail-on-change), 1 a problem (printed as
FILE:LINE: message): a broken journal, a channel with no decisions in it,
a script that fails or times out on some decision, more changes than
--fail-on-change allows; 2 usage.

Examples:
  dispatch replay --journal journal.jsonl
  dispatch replay --journal journal.jsonl --what-if scripts/p2c.lua --channel prod/email
  dispatch replay --journal journal.jsonl --what-if scripts/p2c.lua --channel prod/email \
      --json --fail-on-change 5
`

func runReplay(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("replay", replayUsage, stderr)
	path := fs.String("journal", "", "")
	whatIf := fs.String("what-if", "", "")
	channelFlag := fs.String("channel", "", "")
	examples := fs.Int("examples", 5, "")
	timeout := fs.Duration("timeout", router.DefaultTimeout, "")
	asJSON := fs.Bool("json", false, "")
	failOnChange := fs.String("fail-on-change", "", "")
	if code := parseFlags(fs, replayUsage, args, stdout); code >= 0 {
		return code
	}
	if *path == "" || (*whatIf == "") != (*channelFlag == "") {
		fmt.Fprintln(stderr, "dispatch replay: --journal is required, and --what-if and --channel go together")
		return exitUsage
	}
	f, err := regularfile.Open(*path)
	if err != nil {
		fmt.Fprintf(stderr, "dispatch replay: %v\n", err)
		return exitError
	}
	defer f.Close()
	if *whatIf != "" {
		return runWhatIf(*path, f, whatIfFlags{script: *whatIf, channel: *channelFlag, examples: *examples,
			timeout: *timeout, asJSON: *asJSON, failOnChange: *failOnChange}, stdout, stderr)
	}
	if *asJSON || *failOnChange != "" {
		fmt.Fprintln(stderr, "dispatch replay: --json and --fail-on-change go with --what-if")
		return exitUsage
	}
	rep, err := journal.Verify(context.Background(), f)
	warnTruncated(stderr, *path, rep.Truncated)
	if err != nil {
		// The journal cannot be read past a line: a problem after what came
		// before it.
		if rep.Problems == 0 {
			return readError(stderr, *path, err)
		}
		rep.Problems++
	} else {
		// A conversation that never closed is what a crash leaves: it is
		// reported and not replayed. Anything else is a broken journal.
		for _, p := range rep.Unfinished {
			fmt.Fprintf(stderr, "%s:%d: warning: conversation %s never closed (the run stopped before it ended?); it is not replayed\n",
				*path, p.Line, p.ConversationID)
		}
	}
	if rep.Problems > 0 {
		fmt.Fprintf(stderr, "%s:%v\n", *path, strings.TrimPrefix(rep.First.Error(), "line "))
		if rep.Problems > 1 {
			fmt.Fprintf(stderr, "(and %d more problems)\n", rep.Problems-1)
		}
		return exitError
	}
	printSummary(stdout, *path, rep.Summary)
	return exitOK
}

// warnTruncated reports a torn last line, which reading skipped.
func warnTruncated(stderr io.Writer, path string, line int) {
	if line > 0 {
		fmt.Fprintf(stderr, "%s:%d: warning: the last line is truncated (a crash in the middle of a write?); it is ignored\n", path, line)
	}
}

// readError reports why a journal could not be read: at its line if it is
// a line that is malformed.
func readError(stderr io.Writer, path string, err error) int {
	var le *journal.LineError
	if errors.As(err, &le) {
		fmt.Fprintf(stderr, "%s:%d: %v\n", path, le.Line, le.Err)
	} else {
		fmt.Fprintf(stderr, "dispatch replay: %v\n", err) // a file's errors name it
	}
	return exitError
}

func printSummary(w io.Writer, path string, s journal.Summary) {
	t := s.Total
	fmt.Fprintf(w, "%s: consistent: %d operations, %d conversations replayed with 0 live calls\n",
		path, s.Operations, t.Conversations)
	timedOut := fmt.Sprint(t.Timeouts)
	if t.ScheduleToStartTimeouts > 0 {
		timedOut += fmt.Sprintf(" timed out (%d schedule-to-start)", t.ScheduleToStartTimeouts)
	} else {
		timedOut += " timed out"
	}
	fmt.Fprintf(w, "outcomes: %d completed, %d failed, %d no worker, %s, %d other errors\n\n",
		t.Completed, t.Failed, t.NoWorkers, timedOut, t.OtherErrors)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tCONVERSATIONS\tCOMPLETED\tFAILED\tNO WORKER\tTIMED OUT\tSELECTIONS\tEXITS")
	for _, k := range s.ChannelNames() {
		c := s.Channels[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", k, c.Conversations, c.Completed, c.Failed, c.NoWorkers, c.Timeouts, c.Selected, c.Exits)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tWORKER\tSELECTED\tCOMPLETED\tFAILED\tEXITS\tTIMEOUTS")
	for _, k := range s.WorkerKeys() {
		c := s.Workers[k]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", k.Channel, k.Worker, c.Selected, c.Answered, c.AnsweredFailed, c.Exits, c.TimedOut)
	}
	tw.Flush()
	printBacklog(w, s)
}

// printBacklog adds, when activities waited in a backlog (issue 12), a
// table of the waits per channel: how many, the p50 and p99 of those that
// ended in a selection, and the schedule-to-start timeouts. A journal
// without waits prints nothing more.
func printBacklog(w io.Writer, s journal.Summary) {
	waited := slices.ContainsFunc(s.ChannelNames(), func(k string) bool {
		return s.Channels[k].Waits > 0 || s.Channels[k].ScheduleToStartTimeouts > 0
	})
	if !waited {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tWAITS\tWAIT P50\tWAIT P99\tSCHEDULE-TO-START TIMEOUTS")
	for _, k := range s.ChannelNames() {
		c := s.Channels[k]
		p50, p99 := "-", "-"
		if c.Waited.Count() > 0 {
			p50, p99 = waitText(c.Waited.Quantile(0.50)), waitText(c.Waited.Quantile(0.99))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\n", k, c.Waits, p50, p99, c.ScheduleToStartTimeouts)
	}
	tw.Flush()
}

// waitText shows a wait as dispatch run shows latencies, 0 included.
func waitText(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	return latency(d)
}

// decisionsText lists the channels that have decisions in a journal.
func decisionsText(decisions map[engine.ChannelName]int) string {
	if len(decisions) == 0 {
		return "the journal has none at all"
	}
	var parts []string
	for ch, n := range decisions {
		parts = append(parts, fmt.Sprintf("%s (%d)", ch.Short(), n))
	}
	slices.Sort(parts)
	return "the journal has decisions on " + strings.Join(parts, ", ")
}
