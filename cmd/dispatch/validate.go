package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/regularfile"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/router"
)

const validateUsage = `Usage: dispatch validate -c FILE [--against JOURNAL] [--json]

Loads the YAML config, reads and compiles every routing script, and runs
each script through the reload gate that guards hot reloads: over synthetic
decisions made from the channel's configured workers (all idle, half full,
full, and each excluded on a second attempt; inputs are "{}"), a call that
errors, runs past the channel's script_timeout or returns an id that is not
a candidate is a problem.

With --against, the scripts are run instead over every routing decision a
journal recorded on their channels (the requests, candidates, exclusions
and attempts those decisions saw, with the same seeded random draws), and
each channel says how many of them its script would decide differently:
the check to make before putting a new script in service. A channel with
no decision in the journal is checked on synthetic decisions. A script that
times out on 5 decisions is not run on the rest of them.

Every problem is reported at once as FILE:LINE:COL: message (script errors
point into the script). Exit 0 when the config is valid, 1 when it is not.

With --json, one JSON document on stdout instead, with the same exit codes:
  {"file", "valid", "problems": [{"file", "line", "column", "message",
   "snippet", "channel"}], "warnings": [the same], "local_workers",
   "worker_programs", "channels": [{"channel", "lang", "hash", "source",
   "timeout", "report"}]}
line and column are 0 when unknown; snippet (a script's source line) and
channel are left out when there is none; channels are listed when the
config is valid.

Flags:
  -c, --config FILE   the config file (default config/dispatch.yaml)
  --against JOURNAL   run the scripts over the decisions of this journal
  --json              print the result as JSON (above)

Examples:
  dispatch validate -c config/dispatch.yaml
  dispatch validate -c config/dispatch.yaml --against journal.jsonl
  dispatch validate -c config/dispatch.yaml --json
`

func runValidate(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("validate", validateUsage, stderr)
	path := fs.String("config", "config/dispatch.yaml", "")
	fs.StringVar(path, "c", "config/dispatch.yaml", "")
	against := fs.String("against", "", "")
	asJSON := fs.Bool("json", false, "")
	if code := parseFlags(fs, validateUsage, args, stdout); code >= 0 {
		return code
	}
	v := validate(*path, *against)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v.result()); err != nil {
			fmt.Fprintf(stderr, "dispatch validate: %v\n", err)
			return exitError
		}
	} else {
		v.print(stdout, stderr)
	}
	if v.valid() {
		return exitOK
	}
	return exitError
}

// validation is what validate found: the problems, each with the channel
// it is about when known, the warnings, and, for a valid config, what each
// channel's check reported.
type validation struct {
	cfg        *config.Config // nil when it did not load
	path       string         // the config file, as given
	against    string
	againstErr error // --against's journal could not be read
	problems   config.Errors
	channelOf  map[*config.Error]engine.ChannelName
	warnings   config.Errors
	reports    map[engine.ChannelName]string
	uncounted  bool // the problems are the journal's, printed without a count
}

func (v *validation) valid() bool { return v.againstErr == nil && len(v.problems) == 0 }

// validate loads the config at path and checks every channel's script by
// the reload gate, over synthetic decisions or those of the journal at
// against.
func validate(path, against string) *validation {
	v := &validation{path: path, against: against, channelOf: map[*config.Error]engine.ChannelName{}, reports: map[engine.ChannelName]string{}}
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		var es config.Errors
		if !errors.As(err, &es) {
			es = config.Errors{{File: path, Msg: err.Error(), Err: err}}
		}
		v.problems = es
		return v
	}
	v.cfg = cfg
	var recorded map[engine.ChannelName]*recordedCheck
	if against != "" {
		var others map[engine.ChannelName]int
		var torn int
		if recorded, others, torn, err = checkAgainst(cfg, against); err != nil {
			v.againstErr = err
			return v
		}
		if torn > 0 {
			v.warnings = append(v.warnings, &config.Error{File: against, Line: torn,
				Msg: "the last line is truncated (a crash in the middle of a write?); it is ignored"})
		}
		matched := 0
		for _, rc := range recorded {
			matched += rc.decisions
		}
		if matched == 0 {
			// A journal of another config would check nothing and pass.
			v.problems = config.Errors{{File: against,
				Msg: fmt.Sprintf("no routing decisions on the channels of %s; %s", cfg.File, decisionsText(others))}}
			v.uncounted = true
			return v
		}
	}
	for _, ch := range cfg.Channels {
		if rc := recorded[ch.Name]; rc != nil && rc.decisions > 0 {
			if rc.refusal != nil {
				e := ch.Refusal(cfg.File, rc.refusal)
				if rc.failed > 1 {
					e.Msg += fmt.Sprintf("; it fails on %d of the %d recorded decisions it ran on", rc.failed, rc.decisions)
				}
				v.problems = append(v.problems, e)
				v.channelOf[e] = ch.Name
				continue
			}
			v.reports[ch.Name] = fmt.Sprintf("would change %d of %d recorded decisions", rc.changed, rc.decisions)
			continue
		}
		rep, err := ch.Gate(context.Background(), cfg.File, nil)
		if err != nil {
			e := ch.Refusal(cfg.File, err)
			v.problems = append(v.problems, e)
			v.channelOf[e] = ch.Name
			continue
		}
		v.reports[ch.Name] = rep.String()
		if recorded != nil {
			v.reports[ch.Name] += " (no decision in the journal)"
		}
	}
	if len(v.problems) > 0 {
		return v
	}
	for _, ch := range cfg.Channels {
		for _, w := range ch.Workers {
			if len(w.Exec) == 0 {
				continue
			}
			// Where it is found is this machine's business, so only a
			// warning: the config may be meant for another.
			if _, err := exec.LookPath(w.Exec[0]); err != nil {
				e := &config.Error{File: cfg.File, Line: w.Pos.Line, Column: w.Pos.Column,
					Msg: fmt.Sprintf("worker %s's program %s cannot be run here: %v", w.ID, w.Exec[0], errors.Unwrap(err)), Err: err}
				v.warnings = append(v.warnings, e)
				v.channelOf[e] = ch.Name
			}
		}
	}
	return v
}

// print writes the validation as text: the problems and warnings to
// stderr as FILE:LINE:COL: message, and for a valid config a line per
// channel to stdout.
func (v *validation) print(stdout, stderr io.Writer) {
	if v.againstErr != nil {
		fmt.Fprintf(stderr, "dispatch validate: --against: %v\n", v.againstErr)
		return
	}
	for _, w := range v.warnings {
		fmt.Fprintln(stderr, warningText(w))
	}
	switch {
	case v.uncounted:
		for _, e := range v.problems {
			fmt.Fprintln(stderr, e)
		}
		return
	case len(v.problems) > 0:
		printConfigErrors(stderr, v.problems)
		return
	}
	cfg := v.cfg
	simulated, programs := workerCounts(cfg)
	if programs > 0 {
		fmt.Fprintf(stdout, "%s: ok: %d channels, %d local workers, %d worker programs\n", cfg.File, len(cfg.Channels), simulated, programs)
	} else {
		fmt.Fprintf(stdout, "%s: ok: %d channels, %d local workers\n", cfg.File, len(cfg.Channels), simulated)
	}
	for _, ch := range cfg.Channels {
		ver := ch.Router(cfg.File).Version()
		fmt.Fprintf(stdout, "  %s/%s\t%s %s (%s), timeout %s; %s\n",
			ch.Name.Namespace(), ch.Name.TaskQueue(), ver.Lang, ver.Source, shortHash(ver.Hash), ch.ScriptTimeout, v.reports[ch.Name])
	}
}

// warningText is a warning as validate prints it: FILE:LINE:COL: warning: message.
func warningText(w *config.Error) string {
	short := *w
	short.Msg = "warning: " + w.Msg
	return short.Short()
}

// workerCounts counts the config's simulated workers and worker programs.
func workerCounts(cfg *config.Config) (simulated, programs int) {
	for _, ch := range cfg.Channels {
		for _, w := range ch.Workers {
			if len(w.Exec) > 0 {
				programs++
			} else {
				simulated++
			}
		}
	}
	return simulated, programs
}

// validateResult is the validate --json output.
type validateResult struct {
	File           string            `json:"file"`
	Valid          bool              `json:"valid"`
	Problems       []validateProblem `json:"problems"`
	Warnings       []validateProblem `json:"warnings"`
	LocalWorkers   int               `json:"local_workers"`
	WorkerPrograms int               `json:"worker_programs"`
	Channels       []validateChannel `json:"channels"`
}

// validateProblem is one problem (or warning) of validate --json, where
// the text output prints FILE:LINE:COL: message; line and column are 0
// when unknown, channel is "" when the problem is not about one channel.
type validateProblem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
	Snippet string `json:"snippet,omitempty"`
	Channel string `json:"channel,omitempty"`
}

// validateChannel is a channel of a valid config in validate --json: its
// script's version, as route --json shows it, and what its check found.
type validateChannel struct {
	Channel string `json:"channel"`
	Lang    string `json:"lang"`
	Hash    string `json:"hash"`
	Source  string `json:"source"`
	Timeout string `json:"timeout"`
	Report  string `json:"report"`
}

// result is the validation as validate --json prints it.
func (v *validation) result() validateResult {
	out := validateResult{Valid: v.valid(), Problems: []validateProblem{}, Warnings: []validateProblem{}, Channels: []validateChannel{}}
	out.File = v.path
	if v.againstErr != nil {
		var ce *config.Error
		if !errors.As(v.againstErr, &ce) {
			ce = &config.Error{File: v.against, Msg: v.againstErr.Error()}
		}
		p := v.problem(ce)
		p.Message = "--against: " + p.Message
		out.Problems = append(out.Problems, p)
		return out
	}
	for _, e := range v.problems {
		out.Problems = append(out.Problems, v.problem(e))
	}
	for _, e := range v.warnings {
		out.Warnings = append(out.Warnings, v.problem(e))
	}
	if !out.Valid || v.cfg == nil {
		return out
	}
	out.LocalWorkers, out.WorkerPrograms = workerCounts(v.cfg)
	for _, ch := range v.cfg.Channels {
		ver := ch.Router(v.cfg.File).Version()
		out.Channels = append(out.Channels, validateChannel{Channel: ch.Name.Short(), Lang: ver.Lang, Hash: ver.Hash,
			Source: ver.Source, Timeout: ch.ScriptTimeout.String(), Report: v.reports[ch.Name]})
	}
	return out
}

func (v *validation) problem(e *config.Error) validateProblem {
	p := validateProblem{File: e.File, Line: e.Line, Column: e.Column, Message: e.Msg, Snippet: e.Snippet}
	if ch, ok := v.channelOf[e]; ok {
		p.Channel = ch.Short()
	}
	return p
}

// recordedCheck is what running a channel's script over a journal's
// decisions found.
type recordedCheck struct {
	decisions, changed, failed, timeouts int
	refusal                              *router.GateError // the first failure
}

// maxTimeoutsAgainst is how many timeouts stop a script's run over a
// journal: a loop would cost its whole deadline on every decision.
const maxTimeoutsAgainst = 5

// checkAgainst runs every channel's script over the decisions the journal
// at path recorded on the channel, streaming it. It also counts the
// decisions on the journal's other channels, and returns the line of a
// torn last line (0 if none).
func checkAgainst(cfg *config.Config, path string) (map[engine.ChannelName]*recordedCheck, map[engine.ChannelName]int, int, error) {
	f, err := regularfile.Open(path)
	if err != nil {
		return nil, nil, 0, err
	}
	defer f.Close()
	routers := map[engine.ChannelName]engine.Router{}
	out := map[engine.ChannelName]*recordedCheck{}
	for _, ch := range cfg.Channels {
		routers[ch.Name] = ch.Router(cfg.File)
		out[ch.Name] = &recordedCheck{}
	}
	others := map[engine.ChannelName]int{}
	jr := journal.NewReader(f)
	ctx := context.Background()
	for dec := range journal.Decisions(jr.All()) {
		r, ok := routers[dec.Selection.Channel]
		if !ok {
			others[dec.Selection.Channel]++
			continue
		}
		rc := out[dec.Selection.Channel]
		if rc.timeouts >= maxTimeoutsAgainst {
			continue
		}
		rc.decisions++
		chosen, err := router.Decide(ctx, r, dec.Selection)
		switch {
		case err != nil:
			rc.failed++
			if errors.Is(err, router.ErrScriptTimeout) {
				rc.timeouts++
			}
			if rc.refusal == nil {
				rc.refusal = &router.GateError{Where: fmt.Sprintf("%s:%d", path, dec.Line),
					Sample: router.Sample{Selection: dec.Selection, Chosen: dec.Chosen}, Err: err}
			}
		case chosen != dec.Chosen:
			rc.changed++
		}
	}
	if err := jr.Err(); err != nil {
		var le *journal.LineError
		if errors.As(err, &le) {
			return nil, nil, 0, &config.Error{File: path, Line: le.Line, Msg: le.Err.Error(), Err: le.Err}
		}
		return nil, nil, 0, err
	}
	return out, others, jr.Truncated(), nil
}

// printConfigErrors writes each problem on its own line(s).
func printConfigErrors(w io.Writer, err error) {
	var es config.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintln(w, e)
		}
		fmt.Fprintf(w, "%d problem(s)\n", len(es))
		return
	}
	fmt.Fprintln(w, err)
}

func shortHash(h string) string {
	if len(h) > len("sha256:")+12 {
		return h[:len("sha256:")+12]
	}
	return h
}
