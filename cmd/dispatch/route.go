package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/strictjson"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/router"
)

const routeUsage = `Usage: dispatch route -c FILE --channel NS/QUEUE --candidates JSON [--exclude ID]... [--request JSON] [--json]
       dispatch route --script FILE [--lang lua|expr] [--timeout D] [--channel NS/QUEUE] --candidates JSON [...]

Runs the channel's routing script once, as the engine would, and prints the
chosen worker id. Excluded workers are removed from the candidates before the
script runs, and listed to it as excluded.

With --script, runs a script file without a config, for a quick trial: it
is compiled as a config would compile it (compile errors print as
FILE:LINE:COL: message, exit 1) and decides as above, on the channel
--channel names (default default/trial). -c and --script are mutually
exclusive.

Flags:
  -c, --config FILE     the config file (default config/dispatch.yaml)
  --channel NS/QUEUE    the channel, as namespace/task_queue (or the
                        aion.dispatch.NS.QUEUE form journals show)
  --candidates JSON     the workers to choose from: a JSON array of
                        {"id", "in_flight", "max_in_flight", "buffer_depth", "tags", "labels",
                        "latency_ewma", "latency_peak_ewma", "error_rate", "exits"}
                        (a journal's worker_selected candidates as they are);
                        @FILE reads it from a file, - from standard input
  --exclude ID          a worker already excluded (repeatable)
  --request JSON        the request the script sees: {"workflow_id", "activity_type",
                        "input" (a JSON value or string), "content_type",
                        "conversation_id", "attempt"}; @FILE and - as above
  --json                print {"worker", "lang", "hash", "source", "duration"}
                        (worker null when none was chosen)
  --script FILE         run this script file instead of a config's channel
  --lang lua|expr       its language (default from its extension, .lua or .expr)
  --timeout D           its time limit per decision (default 50ms, a
                        channel's default script_timeout)

Exit codes: 0 a worker was chosen; 3 none was (the script chose none, or a
worker with no free slot, which the engine would not place the activity on;
or no candidate is left once the excluded are removed, in which case the
script is not run, as in the engine); 1 an error (the config, the channel, the script);
2 a bad command line, flag values included (--candidates that are not JSON).

Examples:
  dispatch route -c config/dispatch.yaml --channel prod/email \
    --candidates '[{"id":"email-1","in_flight":3,"max_in_flight":4},{"id":"email-2","max_in_flight":4}]' \
    --exclude email-3 --request '{"workflow_id":"wf-42","input":{"to":"a@example.com"}}'
  dispatch route --script scripts/p2c.lua --candidates '[{"id":"a"},{"id":"b","in_flight":1,"max_in_flight":2}]'
`

// routeRequest is the --request JSON.
type routeRequest struct {
	WorkflowID     string          `json:"workflow_id"`
	ActivityType   string          `json:"activity_type"`
	Input          json.RawMessage `json:"input"`
	ContentType    string          `json:"content_type"`
	ConversationID string          `json:"conversation_id"`
	Attempt        int             `json:"attempt"`
}

// routeResult is the --json output.
type routeResult struct {
	Worker   *string `json:"worker"`
	Lang     string  `json:"lang"`
	Hash     string  `json:"hash"`
	Source   string  `json:"source"`
	Duration string  `json:"duration"`
}

func runRoute(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("route", routeUsage, stderr)
	f := addDecisionFlags(fs)
	t := addTrialFlags(fs)
	if code := parseFlags(fs, routeUsage, args, stdout); code >= 0 {
		return code
	}
	c := complaints{name: "route", stderr: stderr}
	if code := t.check(fs, f, c); code >= 0 {
		return code
	}
	if *f.channel == "" || *f.candidates == "" {
		fmt.Fprintln(stderr, "dispatch route: --channel and --candidates are required")
		fmt.Fprint(stderr, routeUsage)
		return exitUsage
	}
	if *f.candidates == "-" && *f.request == "-" {
		return c.usage("--candidates and --request cannot both read standard input; give one of them as JSON or @FILE")
	}
	ch, err := config.ParseChannelFlag(*f.channel)
	if err != nil {
		return c.usage("--channel: %v", err)
	}
	cands, err := readCandidates(*f.candidates, stdin)
	if err != nil {
		return c.usage("--candidates: %v", err)
	}
	req, err := readRouteRequest(*f.request, stdin)
	if err != nil {
		return c.usage("--request: %v", err)
	}
	var r *router.Script
	var code int
	if *t.script != "" {
		r, code = t.router(c)
	} else {
		r, code = f.router(ch, c)
	}
	if code >= 0 {
		return code
	}
	sel := routeSelection(ch, req, cands, f.excluded)
	var d engine.Decision
	var took time.Duration
	var declined error // why the engine would place the activity on no worker by the script's answer
	if len(sel.Candidates) > 0 {
		start := time.Now()
		d, err = r.Select(context.Background(), sel)
		took = time.Since(start)
		if err != nil {
			return c.fail("%v", err)
		}
		if _, declined = engine.CheckDecision(sel.Candidates, d); errors.Is(declined, engine.ErrRouting) {
			return c.fail("%v", declined)
		}
	} else {
		d.Version = r.Version() // like the engine, which does not ask the router then
	}
	chosen := d.WorkerID
	if declined != nil {
		chosen = ""
	}
	if *f.asJSON {
		out := routeResult{Lang: d.Version.Lang, Hash: d.Version.Hash, Source: d.Version.Source, Duration: took.String()}
		if chosen != "" {
			out.Worker = &chosen
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return c.fail("%v", err)
		}
	} else if chosen != "" {
		fmt.Fprintln(stdout, chosen)
	}
	switch {
	case chosen != "":
		return exitOK
	case len(cands) == 0:
		fmt.Fprintf(stderr, "dispatch route: %v: no candidates\n", engine.ErrNoWorkers)
	case len(sel.Candidates) == 0:
		fmt.Fprintf(stderr, "dispatch route: %v: %s\n", engine.ErrNoWorkers, allExcluded(cands, f.excluded))
	default: // the script chose none, or a full worker
		fmt.Fprintf(stderr, "dispatch route: %v\n", declined)
	}
	return exitNoWorker
}

// trialChannel is the channel route --script decides on when --channel is
// not given.
const trialChannel = "default/trial"

// trialFlags are route's flags for a script run without a config: the
// script file, its language and its timeout.
type trialFlags struct {
	script, lang *string
	timeout      *time.Duration
}

func addTrialFlags(fs *flag.FlagSet) *trialFlags {
	return &trialFlags{
		script:  fs.String("script", "", ""),
		lang:    fs.String("lang", "", ""),
		timeout: fs.Duration("timeout", router.DefaultTimeout, ""),
	}
}

// check refuses --script with a config and --lang or --timeout without
// --script, and gives --channel its default with --script; it returns the
// exit code to stop with, or -1 to go on.
func (t *trialFlags) check(fs *flag.FlagSet, f *decisionFlags, c complaints) int {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	switch {
	case *t.script == "" && (set["lang"] || set["timeout"]):
		return c.usage("--lang and --timeout go with --script")
	case *t.script == "":
		return -1
	case set["c"] || set["config"]:
		return c.usage("-c and --script are mutually exclusive: route asks a config's channel, or runs a script without one")
	case *t.timeout <= 0:
		return c.usage("--timeout: want a positive duration, got %s", *t.timeout)
	}
	if *f.channel == "" {
		*f.channel = trialChannel
	}
	return -1
}

// router reads and compiles the --script as a config would and binds it
// with the --timeout; or, when it cannot, returns the exit code, its
// problems printed as FILE:LINE:COL: message.
func (t *trialFlags) router(c complaints) (*router.Script, int) {
	path := *t.script
	lang, err := trialLang(path, *t.lang)
	if err != nil {
		return nil, c.usage("%v", err)
	}
	src, err := config.ReadScript(path)
	if err != nil {
		return nil, c.fail("--script: %v", err)
	}
	prog, err := router.NewCompiler(router.Limits{}).Compile(lang, path, src)
	if err != nil {
		printConfigErrors(c.stderr, config.Errors(config.ScriptErrors(err, path, 0)))
		return nil, exitError
	}
	return router.NewScript(prog, path, *t.timeout), -1
}

// trialLang is the language of the script at path: named when given, else
// the one its extension names (.lua or .expr).
func trialLang(path, named string) (router.Lang, error) {
	if named != "" {
		lang, err := router.ParseLang(named)
		if err != nil {
			return "", fmt.Errorf("--lang: %w", err)
		}
		return lang, nil
	}
	switch filepath.Ext(path) {
	case ".lua":
		return router.Lua, nil
	case ".expr":
		return router.Expr, nil
	}
	return "", fmt.Errorf("--script: cannot tell the language of %s from its extension (.lua or .expr); give --lang lua or --lang expr", path)
}

// routeSelection builds the selection the engine would give a channel's
// script for the --request, --candidates and --exclude of route and bench.
func routeSelection(ch engine.ChannelName, req routeRequest, cands []engine.ConsumerStateView, excluded []string) engine.Selection {
	attempt := req.Attempt
	if attempt == 0 {
		attempt = len(excluded) + 1 // the attempt that many exclusions imply
	}
	convID := req.ConversationID
	if convID == "" {
		convID = "cli"
	}
	request := engine.ActivityRequest{
		WorkflowID: req.WorkflowID, ActivityType: req.ActivityType, TaskQueue: ch.TaskQueue(),
		Input: protocol.InputPayload(req.Input, req.ContentType),
	}
	return engine.NewSelection(ch, convID, attempt, request, engine.WorkersOf(cands), excluded)
}

// allExcluded says that every candidate is excluded, naming apart the
// excluded ids that are not candidates, so that the count agrees with the
// ids beside it.
func allExcluded(cands []engine.ConsumerStateView, excluded []string) string {
	ids := make([]string, len(cands))
	for i, c := range cands {
		ids[i] = c.ID
	}
	msg := fmt.Sprintf("all %d candidates are excluded (%s)", len(ids), strings.Join(ids, ", "))
	if len(ids) == 1 {
		msg = fmt.Sprintf("the 1 candidate is excluded (%s)", ids[0])
	}
	var others []string
	for _, id := range excluded {
		if !slices.Contains(ids, id) {
			others = append(others, id)
		}
	}
	if len(others) > 0 {
		msg += "; also excluded, not a candidate: " + strings.Join(others, ", ")
	}
	return msg
}

// maxArgBytes bounds what readArg reads from a file or standard input.
const maxArgBytes = 16 << 20

// readArg returns the flag's text, the file it names with @FILE (a pipe,
// as from a shell's <(…), works too), or standard input for "-"; a file or
// input over maxArgBytes is an error, found without reading past it.
func readArg(v string, stdin io.Reader) ([]byte, error) {
	switch {
	case v == "-":
		return readAtMost(stdin, "standard input")
	case strings.HasPrefix(v, "@"):
		f, err := os.Open(v[1:])
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readAtMost(f, v[1:])
	}
	return []byte(v), nil
}

func readAtMost(r io.Reader, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxArgBytes+1))
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		return nil, err // it names the file
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", name, err)
	case len(data) > maxArgBytes:
		return nil, fmt.Errorf("%s is over the limit of %d bytes", name, maxArgBytes)
	}
	return bytes.TrimPrefix(data, []byte("\uFEFF")), nil
}

func readCandidates(v string, stdin io.Reader) ([]engine.ConsumerStateView, error) {
	data, err := readArg(v, stdin)
	if err != nil {
		return nil, err
	}
	const want = `want a JSON array of {"id", "in_flight", "max_in_flight", "buffer_depth", "tags", "labels", "latency_ewma", "latency_peak_ewma", "error_rate", "exits"}`
	var elems []json.RawMessage
	if err := strictjson.Decode(data, &elems); err != nil {
		return nil, fmt.Errorf("%s: %w", want, err)
	}
	type candidate struct {
		ID          string   `json:"id"`
		InFlight    int      `json:"in_flight"`
		MaxInFlight *int     `json:"max_in_flight"`
		BufferDepth int      `json:"buffer_depth"`
		Tags        []string `json:"tags"`
		// Labels: a value that is not a string fails to decode.
		Labels map[string]string `json:"labels"`
		// The observed figures, as a journal records them.
		LatencyEWMA     float64 `json:"latency_ewma"`
		LatencyPeakEWMA float64 `json:"latency_peak_ewma"`
		ErrorRate       float64 `json:"error_rate"`
		Exits           int     `json:"exits"`
	}
	raw := make([]candidate, len(elems))
	for i, e := range elems { // one by one, so that an error says which
		if err := strictjson.Decode(e, &raw[i]); err != nil {
			return nil, fmt.Errorf("candidate %d: %w", i+1, err)
		}
	}
	out := make([]engine.ConsumerStateView, 0, len(raw))
	seen := map[string]bool{}
	for i, c := range raw {
		maxInFlight := 1
		if c.MaxInFlight != nil {
			maxInFlight = *c.MaxInFlight
		}
		switch {
		case c.ID == "":
			return nil, fmt.Errorf("candidate %d has no id", i+1)
		case seen[c.ID]:
			return nil, fmt.Errorf("candidate %q appears twice", c.ID)
		case c.InFlight < 0 || c.BufferDepth < 0:
			return nil, fmt.Errorf("candidate %q: in_flight and buffer_depth cannot be negative", c.ID)
		case maxInFlight < 1:
			return nil, fmt.Errorf("candidate %q: max_in_flight must be 1 or more", c.ID)
		}
		for _, tag := range c.Tags { // as the config checks its workers' tags
			if err := config.CheckTag(tag); err != nil {
				return nil, fmt.Errorf("candidate %q: %w", c.ID, err)
			}
		}
		if err := engine.CheckLabels(c.Labels); err != nil { // as the config and a node check them
			return nil, fmt.Errorf("candidate %q: %w", c.ID, err)
		}
		v := engine.ConsumerStateView{ID: c.ID, InFlight: c.InFlight, MaxInFlight: maxInFlight, BufferDepth: c.BufferDepth,
			Tags: c.Tags, Labels: c.Labels, LatencyEWMA: c.LatencyEWMA, LatencyPeakEWMA: c.LatencyPeakEWMA, ErrorRate: c.ErrorRate,
			Exits: c.Exits}
		if err := v.CheckObserved(); err != nil { // as the journal check does
			return nil, fmt.Errorf("candidate %w", err)
		}
		seen[c.ID] = true
		out = append(out, v)
	}
	return out, nil
}

func readRouteRequest(v string, stdin io.Reader) (routeRequest, error) {
	var req routeRequest
	if v == "" {
		return req, nil
	}
	data, err := readArg(v, stdin)
	if err != nil {
		return req, err
	}
	if err := strictjson.Decode(data, &req); err != nil {
		return req, err
	}
	if req.Attempt < 0 {
		return req, errors.New("attempt cannot be negative")
	}
	if err := protocol.CheckInput(req.Input, req.ContentType); err != nil {
		return req, err
	}
	return req, nil
}
