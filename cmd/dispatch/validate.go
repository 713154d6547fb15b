package main

import (
	"context"
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

const validateUsage = `Usage: dispatch validate -c FILE [--against JOURNAL]

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

Flags:
  -c, --config FILE   the config file (default config/dispatch.yaml)
  --against JOURNAL   run the scripts over the decisions of this journal

Examples:
  dispatch validate -c config/dispatch.yaml
  dispatch validate -c config/dispatch.yaml --against journal.jsonl
`

func runValidate(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("validate", validateUsage, stderr)
	path := fs.String("config", "config/dispatch.yaml", "")
	fs.StringVar(path, "c", "config/dispatch.yaml", "")
	against := fs.String("against", "", "")
	if code := parseFlags(fs, validateUsage, args, stdout); code >= 0 {
		return code
	}
	cfg, err := config.Load(*path, config.Options{})
	if err != nil {
		printConfigErrors(stderr, err)
		return exitError
	}
	var recorded map[engine.ChannelName]*recordedCheck
	if *against != "" {
		var others map[engine.ChannelName]int
		var torn int
		if recorded, others, torn, err = checkAgainst(cfg, *against); err != nil {
			fmt.Fprintf(stderr, "dispatch validate: --against: %v\n", err)
			return exitError
		}
		warnTruncated(stderr, *against, torn)
		matched := 0
		for _, rc := range recorded {
			matched += rc.decisions
		}
		if matched == 0 {
			// A journal of another config would check nothing and pass.
			fmt.Fprintf(stderr, "%s: no routing decisions on the channels of %s; %s\n", *against, cfg.File, decisionsText(others))
			return exitError
		}
	}
	var problems config.Errors
	reports := map[engine.ChannelName]string{}
	for _, ch := range cfg.Channels {
		if rc := recorded[ch.Name]; rc != nil && rc.decisions > 0 {
			if rc.refusal != nil {
				e := ch.Refusal(cfg.File, rc.refusal)
				if rc.failed > 1 {
					e.Msg += fmt.Sprintf("; it fails on %d of the %d recorded decisions it ran on", rc.failed, rc.decisions)
				}
				problems = append(problems, e)
				continue
			}
			reports[ch.Name] = fmt.Sprintf("would change %d of %d recorded decisions", rc.changed, rc.decisions)
			continue
		}
		rep, err := ch.Gate(context.Background(), cfg.File, nil)
		if err != nil {
			problems = append(problems, ch.Refusal(cfg.File, err))
			continue
		}
		reports[ch.Name] = rep.String()
		if recorded != nil {
			reports[ch.Name] += " (no decision in the journal)"
		}
	}
	if len(problems) > 0 {
		printConfigErrors(stderr, problems)
		return exitError
	}
	simulated, programs := 0, 0
	for _, ch := range cfg.Channels {
		for _, w := range ch.Workers {
			if len(w.Exec) > 0 {
				programs++
				// Where it is found is this machine's business, so only
				// a warning: the config may be meant for another.
				if _, err := exec.LookPath(w.Exec[0]); err != nil {
					fmt.Fprintf(stderr, "%s:%d:%d: warning: worker %s's program %s cannot be run here: %v\n",
						cfg.File, w.Pos.Line, w.Pos.Column, w.ID, w.Exec[0], errors.Unwrap(err))
				}
			} else {
				simulated++
			}
		}
	}
	if programs > 0 {
		fmt.Fprintf(stdout, "%s: ok: %d channels, %d local workers, %d worker programs\n", cfg.File, len(cfg.Channels), simulated, programs)
	} else {
		fmt.Fprintf(stdout, "%s: ok: %d channels, %d local workers\n", cfg.File, len(cfg.Channels), simulated)
	}
	for _, ch := range cfg.Channels {
		v := ch.Router(cfg.File).Version()
		fmt.Fprintf(stdout, "  %s/%s\t%s %s (%s), timeout %s; %s\n",
			ch.Name.Namespace(), ch.Name.TaskQueue(), v.Lang, v.Source, shortHash(v.Hash), ch.ScriptTimeout, reports[ch.Name])
	}
	return exitOK
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
			return nil, nil, 0, fmt.Errorf("%s:%d: %w", path, le.Line, le.Err)
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
