package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/router"
)

// whatIfMaxTimeouts is how many decisions may time out before a what-if
// gives up on the script.
const whatIfMaxTimeouts = 5

// loadNote says what a what-if does not do, in its report.
const loadNote = "worker load is not re-simulated: each decision is replayed against the candidates' load recorded with it; a changed decision would have changed the load later decisions saw"

// whatIfFlags are replay's flags for a what-if.
type whatIfFlags struct {
	script, channel string
	examples        int
	timeout         time.Duration
	asJSON          bool
	failOnChange    string // a percentage, or "" when not given
}

func runWhatIf(path string, journalFile io.Reader, f whatIfFlags, stdout, stderr io.Writer) int {
	ch, err := config.ParseChannelFlag(f.channel)
	if err != nil {
		fmt.Fprintf(stderr, "dispatch replay: --channel: %v\n", err)
		return exitUsage
	}
	var lang router.Lang
	switch filepath.Ext(f.script) {
	case ".lua":
		lang = router.Lua
	case ".expr":
		lang = router.Expr
	default:
		fmt.Fprintf(stderr, "dispatch replay: --what-if %s: want a .lua or .expr file\n", f.script)
		return exitUsage
	}
	if f.examples < 0 {
		fmt.Fprintf(stderr, "dispatch replay: --examples %d: want 0 or more\n", f.examples)
		return exitUsage
	}
	if f.timeout <= 0 {
		fmt.Fprintf(stderr, "dispatch replay: --timeout %s: want a positive duration such as 50ms\n", f.timeout)
		return exitUsage
	}
	threshold := -1.0
	if f.failOnChange != "" {
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f.failOnChange, "%"), 64)
		if err != nil || math.IsNaN(pct) || pct < 0 || pct > 100 {
			fmt.Fprintf(stderr, "dispatch replay: --fail-on-change %s: want a percentage from 0 to 100\n", f.failOnChange)
			return exitUsage
		}
		threshold = pct
	}
	src, err := config.ReadScript(f.script)
	if err != nil {
		fmt.Fprintf(stderr, "dispatch replay: --what-if: %v\n", err)
		return exitError
	}
	prog, err := router.NewCompiler(router.Limits{}).Compile(lang, f.script, src)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	r := router.NewScript(prog, f.script, f.timeout)
	jr := journal.NewReader(journalFile)
	rep := journal.WhatIf(context.Background(), jr.All(), ch, r, journal.WhatIfOptions{Keep: f.examples,
		MaxTimeouts: whatIfMaxTimeouts})
	if err := jr.Err(); err != nil {
		return readError(stderr, path, err)
	}
	warnTruncated(stderr, path, jr.Truncated())
	if rep.Recorded == 0 {
		fmt.Fprintf(stderr, "%s: no routing decisions on %s; %s\n", path, ch.Short(), decisionsText(rep.Channels))
		return exitError
	}
	version := engine.RouterVersion{Lang: string(lang), Hash: prog.Hash(), Source: f.script}
	if f.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(whatIfJSONOf(path, ch, version, rep)); err != nil {
			fmt.Fprintf(stderr, "dispatch replay: %v\n", err)
			return exitError
		}
	} else {
		printWhatIf(stdout, path, ch, version, rep)
	}
	if rep.Errors > 0 {
		switch firstErr := firstError(rep.Examples); {
		case rep.Stopped:
			fmt.Fprintf(stderr, "%s: stopped after %d of %d decisions: the script timed out on %d of them (deadline %s, --timeout)\n",
				f.script, rep.Decisions, rep.Recorded, rep.Timeouts, f.timeout)
		case firstErr != nil:
			fmt.Fprintf(stderr, "%s: fails on %d of %d recorded decisions; the first error:\n%v\n", f.script, rep.Errors, rep.Decisions, firstErr)
		default:
			fmt.Fprintf(stderr, "%s: fails on %d of %d recorded decisions\n", f.script, rep.Errors, rep.Decisions)
		}
		return exitError
	}
	if threshold >= 0 && rep.ChangedPercent() > threshold {
		fmt.Fprintf(stderr, "%s: changes %d of %d decisions (%.1f%%), more than --fail-on-change %s%%\n",
			f.script, rep.Changed, rep.Decisions, rep.ChangedPercent(), strconv.FormatFloat(threshold, 'f', -1, 64))
		return exitError
	}
	return exitOK
}

// short is err on one line: a *router.ScriptError without its source line
// and caret, which are printed once, on stderr.
func short(err error) string {
	if s, ok := err.(interface{ Short() string }); ok {
		return s.Short()
	}
	return err.Error()
}

// firstError is the error of the first example that has one.
func firstError(examples []journal.Change) error {
	for _, c := range examples {
		if c.Err != nil {
			return c.Err
		}
	}
	return nil
}

// printWhatIf prints a what-if's report: the summary, the note on load,
// a table of the workers per recorded router version, and the examples.
func printWhatIf(w io.Writer, path string, ch engine.ChannelName, script engine.RouterVersion, rep journal.WhatIfReport) {
	ran := fmt.Sprint(rep.Decisions)
	if rep.Stopped {
		ran = fmt.Sprintf("%d of %d", rep.Decisions, rep.Recorded)
	}
	fmt.Fprintf(w, "%s: %s decisions on %s; %s (%s) would change %d (%.1f%%)%s\n", path, ran, ch.Short(),
		script.Source, shortHash(script.Hash), rep.Changed, rep.ChangedPercent(), kindsText(rep.Errors, rep.Timeouts, rep.Nones))
	fmt.Fprintf(w, "note: %s\n", loadNote)
	for _, v := range rep.Versions {
		fmt.Fprintf(w, "\nrecorded router %s: %d decisions, %d changed (%.1f%%)%s\n", versionText(v.Router),
			v.Decisions, v.Changed, v.Share(v.Changed), kindsText(v.Errors, v.Timeouts, v.Nones))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKER\tRECORDED\tPROPOSED\tDELTA")
		for _, s := range v.Workers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Worker, countShare(v, s.Recorded), countShare(v, s.Proposed), delta(s.Delta()))
		}
		if v.Nones > 0 {
			fmt.Fprintf(tw, "(none)\t-\t%s\t%s\n", countShare(v, v.Nones), delta(v.Nones))
		}
		if v.Errors > 0 {
			fmt.Fprintf(tw, "(error)\t-\t%s\t%s\n", countShare(v, v.Errors), delta(v.Errors))
		}
		tw.Flush()
	}
	if len(rep.Examples) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LINE\tKIND\tROUTER\tWORKFLOW\tACTIVITY\tATTEMPT\tEXCLUDED\tRECORDED\tPROPOSED\tCANDIDATES")
	for _, c := range rep.Examples {
		proposed := c.Proposed
		switch {
		case c.Err != nil:
			proposed = "error: " + short(c.Err) // the source line and caret come on stderr, once
		case proposed == "":
			proposed = "(none)"
		case c.Kind == journal.ChangeNone:
			proposed += " (full)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", c.Line, c.Kind, shortVersion(c.Router), c.WorkflowID,
			cmp.Or(c.ActivityType, "-"), c.Attempt, cmp.Or(strings.Join(c.Excluded, ","), "-"), c.Recorded, proposed,
			candidatesText(c.Candidates))
	}
	tw.Flush()
}

// kindsText says how many of the changes are errors (timeouts among them)
// and nones, if any.
func kindsText(errs, timeouts, nones int) string {
	var parts []string
	switch {
	case timeouts > 0:
		parts = append(parts, fmt.Sprintf("%d of them errors (%d timed out)", errs, timeouts))
	case errs > 0:
		parts = append(parts, fmt.Sprintf("%d of them errors", errs))
	}
	if nones > 0 {
		parts = append(parts, fmt.Sprintf("%d none (no worker, or a full one: the activity would wait)", nones))
	}
	if len(parts) == 0 {
		return ""
	}
	return ", " + strings.Join(parts, ", ")
}

// versionText names a recorded router version, or says that the journal
// recorded none (lines written before versions were).
func versionText(v engine.RouterVersion) string {
	if v == (engine.RouterVersion{}) {
		return "(not recorded)"
	}
	s := v.Lang
	if v.Hash != "" {
		s += " " + shortHash(v.Hash)
	}
	if v.Source != "" {
		s += " " + v.Source
	}
	return s
}

// shortVersion is a version's short hash, or its language without one.
func shortVersion(v engine.RouterVersion) string {
	return cmp.Or(shortHash(v.Hash), v.Lang, "-")
}

// countShare is n and its share of v's decisions.
func countShare(v journal.VersionShift, n int) string {
	return fmt.Sprintf("%d (%.1f%%)", n, v.Share(n))
}

// delta is d with its sign.
func delta(d int) string {
	if d > 0 {
		return fmt.Sprintf("+%d", d)
	}
	return fmt.Sprint(d)
}

// candidatesText lists candidates as id in_flight/max_in_flight [tags]
// {labels} and the observed figures not 0, the labels in key order.
func candidatesText(cands []engine.ConsumerStateView) string {
	parts := make([]string, len(cands))
	for i, c := range cands {
		parts[i] = fmt.Sprintf("%s %d/%d", c.ID, c.InFlight, c.MaxInFlight)
		if len(c.Tags) > 0 {
			parts[i] += " [" + strings.Join(c.Tags, ",") + "]"
		}
		if len(c.Labels) > 0 {
			labels := make([]string, 0, len(c.Labels))
			for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
				labels = append(labels, k+"="+c.Labels[k])
			}
			parts[i] += " {" + strings.Join(labels, ",") + "}"
		}
		parts[i] += observedText(c)
	}
	return strings.Join(parts, ", ")
}

// observedText is a candidate's observed figures, those not 0, as
// " latency=20ms peak=35ms errors=50% exits=1".
func observedText(c engine.ConsumerStateView) string {
	var b strings.Builder
	seconds := func(name string, v float64) {
		switch d := time.Duration(v * float64(time.Second)); {
		case v == 0:
		case d >= time.Microsecond:
			fmt.Fprintf(&b, " %s=%s", name, d.Round(time.Microsecond))
		default: // below what a duration rounded to µs shows
			fmt.Fprintf(&b, " %s=%gs", name, v)
		}
	}
	seconds("latency", c.LatencyEWMA)
	seconds("peak", c.LatencyPeakEWMA)
	if c.ErrorRate != 0 {
		fmt.Fprintf(&b, " errors=%.3g%%", 100*c.ErrorRate)
	}
	if c.Exits != 0 {
		fmt.Fprintf(&b, " exits=%d", c.Exits)
	}
	return b.String()
}

// whatIfJSON is replay --what-if --json's document (docs/scripting.md,
// Machine-readable output).
type whatIfJSON struct {
	Journal         string               `json:"journal"`
	Channel         string               `json:"channel"`
	Script          engine.RouterVersion `json:"script"`
	Decisions       int                  `json:"decisions"`
	Recorded        int                  `json:"recorded"`
	Stopped         bool                 `json:"stopped"`
	Changed         int                  `json:"changed"`
	ChangedPercent  float64              `json:"changed_percent"`
	Errors          int                  `json:"errors"`
	Timeouts        int                  `json:"timeouts"`
	None            int                  `json:"none"`
	LoadResimulated bool                 `json:"load_resimulated"`
	Versions        []whatIfVersionJSON  `json:"versions"`
	Examples        []whatIfExampleJSON  `json:"examples"`
}

// whatIfVersionJSON is one recorded router version's decisions.
type whatIfVersionJSON struct {
	Router    *engine.RouterVersion `json:"router"` // null when not recorded
	Decisions int                   `json:"decisions"`
	Changed   int                   `json:"changed"`
	Errors    int                   `json:"errors"`
	Timeouts  int                   `json:"timeouts"`
	None      int                   `json:"none"`
	Workers   []whatIfWorkerJSON    `json:"workers"`
}

// whatIfWorkerJSON is one worker's row of a version's table.
type whatIfWorkerJSON struct {
	Worker        string  `json:"worker"`
	Recorded      int     `json:"recorded"`
	RecordedShare float64 `json:"recorded_share"`
	Proposed      int     `json:"proposed"`
	ProposedShare float64 `json:"proposed_share"`
	Delta         int     `json:"delta"`
}

// whatIfExampleJSON is one changed decision.
type whatIfExampleJSON struct {
	Line           int                        `json:"line"`
	Kind           string                     `json:"kind"`
	Router         *engine.RouterVersion      `json:"router"`
	WorkflowID     string                     `json:"workflow_id"`
	ConversationID string                     `json:"conversation_id"`
	ActivityType   string                     `json:"activity_type"`
	Attempt        int                        `json:"attempt"`
	Excluded       []string                   `json:"excluded"`
	Candidates     []engine.ConsumerStateView `json:"candidates"`
	Recorded       string                     `json:"recorded"`
	Proposed       *string                    `json:"proposed"`
	Error          string                     `json:"error,omitempty"`
}

// percent rounds a percentage to one decimal, as the text shows it.
func percent(x float64) float64 { return math.Round(x*10) / 10 }

// versionOrNull is v, or nil for the zero version (not recorded).
func versionOrNull(v engine.RouterVersion) *engine.RouterVersion {
	if v == (engine.RouterVersion{}) {
		return nil
	}
	return &v
}

func whatIfJSONOf(path string, ch engine.ChannelName, script engine.RouterVersion, rep journal.WhatIfReport) whatIfJSON {
	out := whatIfJSON{Journal: path, Channel: ch.Short(), Script: script, Decisions: rep.Decisions, Recorded: rep.Recorded,
		Stopped: rep.Stopped, Changed: rep.Changed, ChangedPercent: percent(rep.ChangedPercent()), Errors: rep.Errors,
		Timeouts: rep.Timeouts, None: rep.Nones, Versions: []whatIfVersionJSON{}, Examples: []whatIfExampleJSON{}}
	for _, v := range rep.Versions {
		vj := whatIfVersionJSON{Router: versionOrNull(v.Router), Decisions: v.Decisions, Changed: v.Changed,
			Errors: v.Errors, Timeouts: v.Timeouts, None: v.Nones, Workers: []whatIfWorkerJSON{}}
		for _, s := range v.Workers {
			vj.Workers = append(vj.Workers, whatIfWorkerJSON{Worker: s.Worker, Recorded: s.Recorded,
				RecordedShare: percent(v.Share(s.Recorded)), Proposed: s.Proposed,
				ProposedShare: percent(v.Share(s.Proposed)), Delta: s.Delta()})
		}
		out.Versions = append(out.Versions, vj)
	}
	for _, c := range rep.Examples {
		ej := whatIfExampleJSON{Line: c.Line, Kind: c.Kind.String(), Router: versionOrNull(c.Router),
			WorkflowID: c.WorkflowID, ConversationID: c.ConversationID, ActivityType: c.ActivityType,
			Attempt: c.Attempt, Excluded: c.Excluded, Candidates: c.Candidates,
			Recorded: c.Recorded}
		if c.Proposed != "" {
			ej.Proposed = &c.Proposed
		}
		if c.Err != nil {
			ej.Error = short(c.Err)
		}
		if ej.Excluded == nil {
			ej.Excluded = []string{}
		}
		if ej.Candidates == nil {
			ej.Candidates = []engine.ConsumerStateView{}
		}
		out.Examples = append(out.Examples, ej)
	}
	return out
}
