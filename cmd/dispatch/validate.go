package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

const validateUsage = `Usage: dispatch validate -c FILE

Loads the YAML config, reads and compiles every routing script, and runs
each script through the reload gate that guards hot reloads: over synthetic
decisions made from the channel's configured workers (all idle, half full,
full, and each excluded on a second attempt; inputs are "{}"), a call that
errors, runs past the channel's script_timeout or returns an id that is not
a candidate is a problem. Every problem is reported at once as
FILE:LINE:COL: message (script errors point into the script). Exit 0 when
the config is valid, 1 when it is not.

Flags:
  -c, --config FILE   the config file (default config/dispatch.yaml)

Example:
  dispatch validate -c config/dispatch.yaml
`

func runValidate(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("validate", validateUsage, stderr)
	path := fs.String("config", "config/dispatch.yaml", "")
	fs.StringVar(path, "c", "config/dispatch.yaml", "")
	if code := parseFlags(fs, validateUsage, args, stdout); code >= 0 {
		return code
	}
	cfg, err := config.Load(*path, config.Options{})
	if err != nil {
		printConfigErrors(stderr, err)
		return exitError
	}
	gated, err := cfg.Gate(context.Background(), nil)
	if err != nil {
		printConfigErrors(stderr, err)
		return exitError
	}
	reports := map[engine.ChannelName]router.GateReport{}
	for _, g := range gated {
		reports[g.Channel] = g.Report
	}
	workers := 0
	for _, ch := range cfg.Channels {
		workers += len(ch.Workers)
	}
	fmt.Fprintf(stdout, "%s: ok: %d channels, %d local workers\n", cfg.File, len(cfg.Channels), workers)
	for _, ch := range cfg.Channels {
		v := ch.Router(cfg.File).Version()
		fmt.Fprintf(stdout, "  %s/%s\t%s %s (%s), timeout %s; %s\n",
			ch.Name.Namespace(), ch.Name.TaskQueue(), v.Lang, v.Source, shortHash(v.Hash), ch.ScriptTimeout, reports[ch.Name])
	}
	return exitOK
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
