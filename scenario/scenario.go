// Package scenario runs golden scenarios: a config (or inline channels),
// scripted workers that do exactly what they are told with each request,
// and a list of steps (requests, script swaps, membership changes, a replay
// of what was recorded). Running one yields its journal with times removed
// and conversation ids numbered c1, c2, …, which is compared with the
// golden journal beside the scenario (NAME.golden.jsonl). A request step
// may also say what its dispatch must come to ([Expect]); a scenario with
// expectations may go without a golden journal.
//
// The format is in docs/scenarios.md.
//
// It is public API, as the golden tests of a routing policy are part of
// its users' work: `dispatch test` is built on it, and a Go program that
// embeds dispatch can keep its scenarios in its own `go test`, with [Find]
// and [Check] (or [Load] and [Run] to look at the journal itself).
package scenario

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/regularfile"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/router"
)

// The most a scenario file and a golden journal may hold. A scenario's
// scripts have config.MaxScriptBytes.
const (
	MaxFileBytes   = 4 << 20
	MaxGoldenBytes = 64 << 20
)

// Scenario is a loaded scenario.
type Scenario struct {
	Name        string // the file name without .yaml
	File        string
	Description string
	Config      *config.Config
	Workers     []Worker
	Steps       []Step
	// Timeout is how long each step may take to come to rest (the
	// scenario's timeout key, DefaultTimeout if it has none): a step that
	// hangs fails when it passes.
	Timeout time.Duration
}

// DefaultTimeout is a step's limit in a scenario with no timeout key.
const DefaultTimeout = 5 * time.Second

// HasExpectations reports whether a request step of the scenario says
// what it expects. Such a scenario may go without a golden journal.
func (s *Scenario) HasExpectations() bool {
	for _, st := range s.Steps {
		if st.Expect != nil {
			return true
		}
	}
	return false
}

// Worker is a scripted worker.
type Worker struct {
	Channel     engine.ChannelName
	ID          string
	MaxInFlight int
	Tags        []string
	Labels      map[string]string
	// Script says what the worker does with its 1st, 2nd, … request; the
	// last action repeats.
	Script []Action
	Line   int
}

// ActionKind is what a scripted worker does with a request.
type ActionKind int

// The actions.
const (
	Complete ActionKind = iota + 1 // answer Completed with Output
	Fail                           // answer Failed with Message
	Exit                           // exit with Message, answering nothing
	Hang                           // never answer; return when the conversation closes
)

// Action is one scripted answer.
type Action struct {
	Kind    ActionKind
	Output  engine.Payload
	Message string
	Latency time.Duration
	// Held makes the worker hold the activity, in its slot, until a
	// release step names the worker; then it acts (after Latency). The
	// activities a worker holds are released oldest first.
	Held bool
}

// Step is one step of a scenario; exactly one field is set.
type Step struct {
	Request      *Request
	Swap         *Swap
	AddWorker    *Worker
	RemoveWorker *WorkerRef
	// Release lets the oldest activity the worker holds (an action with
	// Held) go on to its action.
	Release *WorkerRef
	// Replay re-dispatches every request so far in replay mode against the
	// operations recorded so far: no live operation may happen and every
	// outcome must be the recorded one.
	Replay bool
	// Expect, beside a request, is what its dispatch must come to.
	Expect *Expect
	Line   int
}

// Request is an activity to dispatch.
type Request struct {
	Channel engine.ChannelName
	Request engine.ActivityRequest
	// Async leaves the activity open so that later steps see it: with a
	// worker that hangs or holds it (Held), or waiting in the channel's
	// backlog. The scenario goes on once it is there. At the end of the
	// scenario, async activities still open are cancelled one by one, in
	// order.
	Async bool
}

// Swap replaces a channel's routing script, as a hot reload does.
type Swap struct {
	Channel engine.ChannelName
	Lang    router.Lang
	Path    string // the script file, or "" for an inline source
	Source  []byte
	// LineOffset is, for an inline source, the line of the scenario file
	// before the script's first: its errors are placed in the file.
	LineOffset int
	Program    *router.Program
}

// WorkerRef names a worker of a channel.
type WorkerRef struct {
	Channel engine.ChannelName
	ID      string
}

// The YAML shapes, decoded strictly.
type fileYAML struct {
	Description string       `yaml:"description"`
	Timeout     string       `yaml:"timeout"`
	Config      string       `yaml:"config"`
	Version     yaml.Node    `yaml:"version"`
	Defaults    yaml.Node    `yaml:"defaults"`
	Channels    yaml.Node    `yaml:"channels"`
	Workers     []workerYAML `yaml:"workers"`
	Steps       []stepYAML   `yaml:"steps"`
}

type workerYAML struct {
	Channel     string            `yaml:"channel"`
	ID          string            `yaml:"id"`
	MaxInFlight int               `yaml:"max_in_flight"`
	Tags        []string          `yaml:"tags"`
	Labels      map[string]string `yaml:"labels"`
	Script      []actionYAML      `yaml:"script"`
}

type actionYAML struct {
	Complete yaml.Node `yaml:"complete"`
	Fail     *string   `yaml:"fail"`
	Exit     *string   `yaml:"exit"`
	Hang     bool      `yaml:"hang"`
	Held     bool      `yaml:"held"`
	Latency  string    `yaml:"latency"`
}

type stepYAML struct {
	Request      *requestYAML `yaml:"request"`
	Swap         *swapYAML    `yaml:"swap"`
	AddWorker    *workerYAML  `yaml:"add_worker"`
	RemoveWorker *refYAML     `yaml:"remove_worker"`
	Release      *releaseYAML `yaml:"release"`
	Replay       bool         `yaml:"replay"`
	Expect       *expectYAML  `yaml:"expect"`
}

type requestYAML struct {
	Channel         string    `yaml:"channel"`
	WorkflowID      string    `yaml:"workflow_id"`
	ActivityType    string    `yaml:"activity_type"`
	Input           yaml.Node `yaml:"input"`
	ContentType     string    `yaml:"content_type"`
	StartToClose    string    `yaml:"start_to_close"`
	ScheduleToClose string    `yaml:"schedule_to_close"`
	ScheduleToStart string    `yaml:"schedule_to_start"`
	Async           bool      `yaml:"async"`
}

type swapYAML struct {
	Channel string    `yaml:"channel"`
	Lua     string    `yaml:"lua"`
	Expr    string    `yaml:"expr"`
	Lang    string    `yaml:"lang"`
	Source  yaml.Node `yaml:"source"`
}

type refYAML struct {
	Channel string `yaml:"channel"`
	ID      string `yaml:"id"`
}

// releaseYAML is a release step's worker: a type of its own so that a
// message about its keys names the step.
type releaseYAML refYAML

// loader collects a scenario's problems as config.Errors.
type loader struct {
	file     string
	dir      string
	compiler *router.Compiler
	errs     config.Errors
	cfg      *config.Config
}

func (l *loader) errorf(line int, format string, args ...any) {
	l.errs = append(l.errs, &config.Error{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// Load reads and checks the scenario at path. Its problems are reported
// together as config.Errors (FILE:LINE: message).
func Load(path string) (*Scenario, error) {
	data, err := regularfile.Read(path, MaxFileBytes)
	if err != nil {
		return nil, config.Errors{{File: path, Msg: "cannot read scenario: " + regularfile.Reason(err), Err: err}}
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	l := &loader{file: path, dir: filepath.Dir(path), compiler: router.NewCompiler(router.Limits{})}
	var f fileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, config.Errors{{File: path, Line: 1, Msg: "the file is empty; a scenario needs channels (or config) and steps"}}
		}
		return nil, yamlErrors(path, data, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlErrors(path, data, err)
	}
	s := &Scenario{Name: strings.TrimSuffix(filepath.Base(path), ".yaml"), File: path, Description: f.Description}

	switch {
	case f.Config != "" && f.Channels.Kind != 0:
		l.errorf(f.Channels.Line, "give either config or channels, not both")
	case f.Config != "":
		cfg, err := config.Load(l.path(f.Config), config.Options{Compiler: l.compiler})
		if err != nil {
			return nil, err
		}
		l.cfg = cfg
	case f.Channels.Kind != 0:
		cfg, err := config.Parse(path, data, config.Options{Compiler: l.compiler,
			ExtraKeys: []string{"description", "timeout", "workers", "steps"}})
		if err != nil {
			return nil, err
		}
		l.cfg = cfg
	default:
		l.errorf(1, "a scenario needs config: FILE or inline channels (with version: 1)")
		return nil, l.errs
	}
	s.Config = l.cfg
	s.Timeout = DefaultTimeout
	if f.Timeout != "" {
		d, err := time.ParseDuration(f.Timeout)
		if err != nil || d <= 0 {
			l.errorf(keyLine(&doc, "timeout"), "timeout %q: want a positive duration such as 5s", f.Timeout)
		}
		s.Timeout = d
	}

	workerLines := itemLines(&doc, "workers")
	first := map[WorkerRef]int{}
	for i, w := range f.Workers {
		wk := l.worker(w, at(workerLines, i))
		ref := WorkerRef{wk.Channel, wk.ID}
		if line, dup := first[ref]; dup && wk.ID != "" {
			l.errorf(wk.Line, "worker %s on %s is declared twice (first at line %d)", wk.ID, w.Channel, line)
		}
		first[ref] = wk.Line
		s.Workers = append(s.Workers, wk)
	}
	stepLines := itemLines(&doc, "steps")
	for i, st := range f.Steps {
		s.Steps = append(s.Steps, l.step(st, at(stepLines, i)))
	}
	if len(s.Steps) == 0 {
		l.errorf(1, "a scenario needs steps")
	}
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	return s, nil
}

// path resolves a path written in the scenario against its directory.
func (l *loader) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.dir, p)
}

// channel parses NS/QUEUE and checks that the config has it.
func (l *loader) channel(s string, line int) engine.ChannelName {
	if s == "" {
		l.errorf(line, "missing channel (NS/QUEUE)")
		return engine.ChannelName{}
	}
	ch, err := config.ParseChannelFlag(s)
	if err != nil {
		l.errorf(line, "%v", err)
		return engine.ChannelName{}
	}
	if _, ok := l.cfg.Channel(ch); !ok {
		l.errorf(line, "channel %s is not in the config", s)
	}
	return ch
}

func (l *loader) worker(w workerYAML, line int) Worker {
	out := Worker{Channel: l.channel(w.Channel, line), ID: w.ID, MaxInFlight: w.MaxInFlight, Tags: w.Tags,
		Labels: w.Labels, Line: line}
	if w.ID == "" {
		l.errorf(line, "worker: missing id")
	}
	if w.MaxInFlight < 0 {
		l.errorf(line, "worker %s: max_in_flight must be 1 or more", w.ID)
	}
	if err := engine.CheckLabels(w.Labels); err != nil {
		l.errorf(line, "worker %s: %v", w.ID, err)
	}
	if len(w.Script) == 0 {
		l.errorf(line, "worker %s: missing script (what it does with each request)", w.ID)
	}
	for i, a := range w.Script {
		out.Script = append(out.Script, l.action(a, fmt.Sprintf("worker %s: script[%d]", w.ID, i), line))
	}
	return out
}

func (l *loader) action(a actionYAML, what string, line int) Action {
	var out Action
	n := 0
	if a.Complete.Kind != 0 {
		n++
		out.Kind = Complete
		raw, err := jsonValue(&a.Complete)
		if err != nil {
			l.errorf(a.Complete.Line, "%s: complete: %v", what, err)
		}
		out.Output = protocol.InputPayload(raw, "")
	}
	if a.Fail != nil {
		n++
		out.Kind, out.Message = Fail, *a.Fail
	}
	if a.Exit != nil {
		n++
		out.Kind, out.Message = Exit, *a.Exit
	}
	if a.Hang {
		n++
		out.Kind = Hang
	}
	if n != 1 {
		l.errorf(line, "%s: want exactly one of complete, fail, exit or hang: true", what)
	}
	if a.Held {
		out.Held = true
		if a.Hang {
			l.errorf(line, "%s: held: true is for complete, fail or exit (a hang never answers anyway)", what)
		}
	}
	if a.Latency != "" {
		d, err := time.ParseDuration(a.Latency)
		if err != nil || d < 0 {
			l.errorf(line, "%s: latency %q: want a duration such as 5ms", what, a.Latency)
		}
		out.Latency = d
	}
	return out
}

func (l *loader) step(st stepYAML, line int) Step {
	out := Step{Line: line}
	n := 0
	if r := st.Request; r != nil {
		n++
		out.Request = l.request(r, line)
	}
	if sw := st.Swap; sw != nil {
		n++
		out.Swap = l.swap(sw, line)
	}
	if w := st.AddWorker; w != nil {
		n++
		wk := l.worker(*w, line)
		out.AddWorker = &wk
	}
	if r := st.RemoveWorker; r != nil {
		n++
		out.RemoveWorker = &WorkerRef{Channel: l.channel(r.Channel, line), ID: r.ID}
		if r.ID == "" {
			l.errorf(line, "remove_worker: missing id")
		}
	}
	if r := st.Release; r != nil {
		n++
		out.Release = &WorkerRef{Channel: l.channel(r.Channel, line), ID: r.ID}
		if r.ID == "" {
			l.errorf(line, "release: missing id")
		}
	}
	if st.Replay {
		n++
		out.Replay = true
	}
	if n != 1 {
		l.errorf(line, "a step is exactly one of request, swap, add_worker, remove_worker, release or replay: true")
	}
	if st.Expect != nil {
		if st.Request == nil {
			l.errorf(line, "expect: only a request step may say what it expects")
		}
		out.Expect = l.expect(st.Expect, line)
	}
	return out
}

// request checks a request step as dispatch run checks a requests line:
// the step is a protocol.Submission, and each of its problems is reported
// at the step's line.
func (l *loader) request(r *requestYAML, line int) *Request {
	out := &Request{Channel: l.channel(r.Channel, line), Async: r.Async}
	input, err := jsonValue(&r.Input)
	if err != nil {
		l.errorf(line, "request: input: %v", err)
	}
	sub := protocol.Submission{WorkflowID: r.WorkflowID, ActivityType: r.ActivityType, Input: input, ContentType: r.ContentType,
		StartToClose: r.StartToClose, ScheduleToClose: r.ScheduleToClose, ScheduleToStart: r.ScheduleToStart}
	req, err := sub.Request(out.Channel)
	var re *protocol.RequestError
	switch {
	case errors.As(err, &re):
		for _, p := range re.Problems {
			l.errorf(line, "request: %v", p)
		}
	case err != nil:
		l.errorf(line, "request: %v", err)
	}
	out.Request = req
	return out
}

func (l *loader) swap(sw *swapYAML, line int) *Swap {
	out := &Swap{Channel: l.channel(sw.Channel, line)}
	var lang, file string
	inline := sw.Source.Kind != 0 && sw.Source.Tag != "!!null"
	switch {
	case sw.Lua != "" && sw.Expr == "" && !inline:
		lang, file = "lua", sw.Lua
	case sw.Expr != "" && sw.Lua == "" && !inline:
		lang, file = "expr", sw.Expr
	case inline && sw.Lua == "" && sw.Expr == "":
		lang = sw.Lang
		if sw.Source.Kind != yaml.ScalarNode || sw.Source.Tag != "!!str" || sw.Source.Value == "" {
			l.errorf(sw.Source.Line, "swap: source: want the script's text")
			return out
		}
	default:
		l.errorf(line, "swap: want {lua: PATH}, {expr: PATH} or {lang: lua|expr, source: TEXT}")
		return out
	}
	lg, err := router.ParseLang(lang)
	if err != nil {
		l.errorf(line, "swap: %v", err)
		return out
	}
	out.Lang = lg
	if inline {
		out.Source, out.LineOffset = []byte(sw.Source.Value), config.InlineLineOffset(&sw.Source)
		prog, err := l.compiler.Compile(lg, fmt.Sprintf("%s:%d (inline)", l.file, line), out.Source)
		if err != nil {
			// Each problem at its line of the scenario file, as a config's
			// inline scripts' are.
			for _, e := range config.ScriptErrors(err, l.file, out.LineOffset) {
				if e.Line == 0 {
					e.Line = sw.Source.Line
				}
				e.Msg = "swap: " + e.Msg
				l.errs = append(l.errs, e)
			}
			return out
		}
		out.Program = prog
		return out
	}
	out.Path = l.path(file)
	src, err := regularfile.Read(out.Path, config.MaxScriptBytes)
	if err != nil {
		l.errorf(line, "swap: cannot read script %s: %s", file, regularfile.Reason(err))
		return out
	}
	out.Source = src
	prog, err := l.compiler.Compile(lg, out.Path, out.Source)
	if err != nil {
		// At the swap step, the script's own place in the message, and its
		// source line kept as data, below it.
		e := &config.Error{File: l.file, Line: line, Msg: "swap: " + err.Error(), Err: err}
		if se, ok := err.(*router.ScriptError); ok {
			e.Msg, e.Snippet, e.Caret = "swap: "+se.Short(), se.Snippet, se.Column
		}
		l.errs = append(l.errs, e)
		return out
	}
	out.Program = prog
	return out
}

// jsonValue is a YAML value as the JSON input of a submission: a string
// is a JSON string (its text, text/plain unless told), null or absent is
// nothing, anything else is its JSON (application/json unless told). A
// value that JSON cannot hold (a map with a key that is not a string) is
// an error.
func jsonValue(n *yaml.Node) (json.RawMessage, error) {
	if n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil, nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		return json.Marshal(n.Value)
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not a JSON value: %w", err)
	}
	return data, nil
}

// itemLines returns the line of each item of the top-level list key.
func itemLines(doc *yaml.Node, key string) []int {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == key && root.Content[i+1].Kind == yaml.SequenceNode {
			var lines []int
			for _, item := range root.Content[i+1].Content {
				lines = append(lines, item.Line)
			}
			return lines
		}
	}
	return nil
}

// keyLine returns the line of the top-level key, or 1.
func keyLine(doc *yaml.Node, key string) int {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	for i := 0; root.Kind == yaml.MappingNode && i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == key {
			return root.Content[i].Line
		}
	}
	return 1
}

func at(lines []int, i int) int {
	if i < len(lines) {
		return lines[i]
	}
	return 0
}

// yamlErrors places a yaml.v3 error (config.YAMLErrors), each in the
// words of the scenario format.
func yamlErrors(file string, data []byte, err error) config.Errors {
	errs := config.YAMLErrors(file, data, err)
	for _, e := range errs {
		e.Msg = unknownKey(e.Msg)
	}
	return errs
}

// yamlShapes name the parts of a scenario for messages about their keys.
var yamlShapes = map[string]struct {
	what string
	t    reflect.Type
}{
	"fileYAML":    {"the scenario", reflect.TypeFor[fileYAML]()},
	"workerYAML":  {"worker", reflect.TypeFor[workerYAML]()},
	"actionYAML":  {"script action", reflect.TypeFor[actionYAML]()},
	"stepYAML":    {"step", reflect.TypeFor[stepYAML]()},
	"requestYAML": {"request", reflect.TypeFor[requestYAML]()},
	"swapYAML":    {"swap", reflect.TypeFor[swapYAML]()},
	"refYAML":     {"remove_worker", reflect.TypeFor[refYAML]()},
	"releaseYAML": {"release", reflect.TypeFor[releaseYAML]()},
	"expectYAML":  {"expect", reflect.TypeFor[expectYAML]()},
}

var fieldNotFound = regexp.MustCompile(`^field (\S+) not found in type scenario\.(\w+)$`)

// unknownKey rewrites yaml.v3's "field X not found in type T" into the
// words of the scenario format, with the keys that are known there.
func unknownKey(msg string) string {
	m := fieldNotFound.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	shape, ok := yamlShapes[m[2]]
	if !ok {
		return msg
	}
	var known []string
	for i := range shape.t.NumField() {
		if tag, _, _ := strings.Cut(shape.t.Field(i).Tag.Get("yaml"), ","); tag != "" {
			known = append(known, tag)
		}
	}
	sort.Strings(known)
	return fmt.Sprintf("%s: unknown key %q (known: %s)", shape.what, m[1], strings.Join(known, ", "))
}
