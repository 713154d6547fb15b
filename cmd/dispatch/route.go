package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
)

const routeUsage = `Usage: dispatch route -c FILE --channel NS/QUEUE --candidates JSON [--exclude ID]... [--request JSON] [--json]

Runs the channel's routing script once, as the engine would, and prints the
chosen worker id. Excluded workers are removed from the candidates before the
script runs, and listed to it as excluded.

Flags:
  -c, --config FILE     the config file (default config/dispatch.yaml)
  --channel NS/QUEUE    the channel, as namespace/task_queue
  --candidates JSON     the workers to choose from: a JSON array of
                        {"id", "in_flight", "max_in_flight", "buffer_depth", "tags"};
                        @FILE reads it from a file, - from standard input
  --exclude ID          a worker already excluded (repeatable)
  --request JSON        the request the script sees: {"workflow_id", "activity_type",
                        "input" (a JSON value or string), "content_type",
                        "conversation_id", "attempt"}; @FILE and - as above
  --json                print {"worker", "lang", "hash", "source", "duration"}

Exit codes: 0 a worker was chosen, 3 the script chose none, 1 error, 2 usage.

Example:
  dispatch route -c config/dispatch.yaml --channel prod/email \
    --candidates '[{"id":"email-1","in_flight":3,"max_in_flight":4},{"id":"email-2","max_in_flight":4}]' \
    --exclude email-3 --request '{"workflow_id":"wf-42","input":{"to":"a@example.com"}}'
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
	path := fs.String("config", "config/dispatch.yaml", "")
	fs.StringVar(path, "c", "config/dispatch.yaml", "")
	channelFlag := fs.String("channel", "", "")
	candidatesFlag := fs.String("candidates", "", "")
	requestFlag := fs.String("request", "", "")
	asJSON := fs.Bool("json", false, "")
	var excluded stringList
	fs.Var(&excluded, "exclude", "")
	if code := parseFlags(fs, routeUsage, args, stdout); code >= 0 {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "dispatch route: "+format+"\n", a...)
		return exitError
	}
	if *channelFlag == "" || *candidatesFlag == "" {
		fmt.Fprintln(stderr, "dispatch route: --channel and --candidates are required")
		fmt.Fprint(stderr, routeUsage)
		return exitUsage
	}
	ch, err := config.ParseChannelFlag(*channelFlag)
	if err != nil {
		return fail("--channel: %v", err)
	}
	cands, err := readCandidates(*candidatesFlag, stdin)
	if err != nil {
		return fail("--candidates: %v", err)
	}
	req, err := readRouteRequest(*requestFlag, stdin)
	if err != nil {
		return fail("--request: %v", err)
	}
	cfg, err := config.Load(*path, config.Options{})
	if err != nil {
		printConfigErrors(stderr, err)
		return exitError
	}
	channel, ok := cfg.Channel(ch)
	if !ok {
		return fail("%v: %s is not in %s", engine.ErrUnknownChannel, *channelFlag, cfg.File)
	}
	sel := selection(ch, req, cands, excluded)
	r := channel.Router(cfg.File)
	start := time.Now()
	d, err := r.Select(context.Background(), sel)
	took := time.Since(start)
	if err != nil {
		return fail("%v", err)
	}
	if *asJSON {
		out := routeResult{Lang: d.Version.Lang, Hash: d.Version.Hash, Source: d.Version.Source, Duration: took.String()}
		if d.WorkerID != "" {
			out.Worker = &d.WorkerID
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fail("%v", err)
		}
	} else if d.WorkerID != "" {
		fmt.Fprintln(stdout, d.WorkerID)
	}
	if d.WorkerID == "" {
		fmt.Fprintf(stderr, "dispatch route: %v: %s chose none of %d candidates\n", engine.ErrNoWorkers, d.Version.Source, len(sel.Candidates))
		return exitNoWorker
	}
	return exitOK
}

// selection builds what the engine would hand the router: the candidates
// without the excluded ones, and the attempt that many exclusions imply.
func selection(ch engine.ChannelName, req routeRequest, cands []engine.ConsumerStateView, excluded []string) engine.Selection {
	attempt := req.Attempt
	if attempt == 0 {
		attempt = len(excluded) + 1
	}
	convID := req.ConversationID
	if convID == "" {
		convID = "cli"
	}
	sel := engine.Selection{
		WorkflowID:     req.WorkflowID,
		Channel:        ch,
		ConversationID: convID,
		Attempt:        attempt,
		Request: engine.ActivityRequest{
			WorkflowID: req.WorkflowID, ActivityType: req.ActivityType, TaskQueue: ch.TaskQueue(),
			Input: inputPayload(req.Input, req.ContentType),
		},
		Excluded: excluded,
	}
	for _, v := range cands {
		if !slices.Contains(excluded, v.ID) {
			sel.Candidates = append(sel.Candidates, engine.Worker{ID: v.ID, State: v})
		}
	}
	return sel
}

// inputPayload turns a JSON input into a payload: a JSON string is its text
// (text/plain unless told), any other value its JSON (application/json).
func inputPayload(raw json.RawMessage, contentType string) engine.Payload {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return engine.Payload{ContentType: contentType}
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		if contentType == "" {
			contentType = "text/plain"
		}
		return engine.Payload{ContentType: contentType, Data: []byte(s)}
	}
	if contentType == "" {
		contentType = "application/json"
	}
	var compact bytes.Buffer
	if json.Compact(&compact, raw) == nil {
		raw = compact.Bytes()
	}
	return engine.Payload{ContentType: contentType, Data: raw}
}

// readArg returns the flag's text, the file it names with @FILE, or
// standard input for "-".
func readArg(v string, stdin io.Reader) ([]byte, error) {
	switch {
	case v == "-":
		return io.ReadAll(io.LimitReader(stdin, 16<<20))
	case strings.HasPrefix(v, "@"):
		return os.ReadFile(v[1:])
	}
	return []byte(v), nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

func readCandidates(v string, stdin io.Reader) ([]engine.ConsumerStateView, error) {
	data, err := readArg(v, stdin)
	if err != nil {
		return nil, err
	}
	var raw []struct {
		ID          string   `json:"id"`
		InFlight    int      `json:"in_flight"`
		MaxInFlight *int     `json:"max_in_flight"`
		BufferDepth int      `json:"buffer_depth"`
		Tags        []string `json:"tags"`
	}
	if err := decodeStrict(data, &raw); err != nil {
		return nil, fmt.Errorf("want a JSON array of {\"id\", \"in_flight\", \"max_in_flight\", \"buffer_depth\", \"tags\"}: %w", err)
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
		seen[c.ID] = true
		out = append(out, engine.ConsumerStateView{ID: c.ID, InFlight: c.InFlight, MaxInFlight: maxInFlight, BufferDepth: c.BufferDepth, Tags: c.Tags})
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
	if err := decodeStrict(data, &req); err != nil {
		return req, err
	}
	if req.Attempt < 0 {
		return req, errors.New("attempt cannot be negative")
	}
	return req, nil
}
