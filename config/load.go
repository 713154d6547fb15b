package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/regularfile"
	"github.com/aion-dispatch/dispatch/router"
)

// Options configure Load and Parse.
type Options struct {
	// Compiler compiles the routing scripts; nil means a new one with the
	// default limits. Share one to reuse programs across reloads.
	Compiler *router.Compiler
	// ReadFile reads the config and script files; nil means reading them
	// from disk safely: a path that is not a regular file (a directory, a
	// named pipe, a device) is refused without blocking on it, and a file
	// is read no further than its limit (MaxConfigBytes, MaxScriptBytes).
	ReadFile func(name string) ([]byte, error)
	// ExtraKeys are top-level keys the loader accepts and ignores, for
	// files that embed a config among keys of their own (golden scenarios).
	ExtraKeys []string
}

// readFile reads the file name, of at most limit bytes, without the UTF-8
// byte-order mark some editors put at its start.
func (o Options) readFile(name string, limit int) ([]byte, error) {
	var data []byte
	var err error
	if o.ReadFile != nil {
		data, err = o.ReadFile(name)
	} else {
		data, err = regularfile.Read(name, int64(limit))
	}
	return trimBOM(data), err
}

// ReadScript reads a routing script file as Load does: a regular file of
// at most MaxScriptBytes, without a leading UTF-8 byte-order mark.
func ReadScript(path string) ([]byte, error) {
	return Options{}.readFile(path, MaxScriptBytes)
}

// trimBOM drops a UTF-8 byte-order mark at the start of data.
func trimBOM(data []byte) []byte { return bytes.TrimPrefix(data, []byte("\uFEFF")) }

// Load reads and validates the config file at path and compiles its scripts.
// On failure the error is an [Errors] listing every problem found.
func Load(path string, opts Options) (*Config, error) {
	data, err := opts.readFile(path, MaxConfigBytes)
	if err != nil {
		msg := "cannot read config: " + errText(err)
		if errors.Is(err, regularfile.ErrTooLarge) {
			msg = "the file " + errText(err)
		}
		return nil, Errors{{File: path, Msg: msg, Err: err}}
	}
	return Parse(path, data, opts)
}

// Parse validates data as the config file at path (script paths are
// relative to its directory) and compiles its scripts.
func Parse(path string, data []byte, opts Options) (*Config, error) {
	if opts.Compiler == nil {
		opts.Compiler = router.NewCompiler(router.Limits{})
	}
	l := &loader{file: path, dir: filepath.Dir(path), opts: opts}
	data = trimBOM(data)
	cfg := l.parse(data)
	if len(l.errs) > 0 {
		l.errs.sort()
		return nil, l.errs
	}
	cfg.hash = contentHash(data)
	return cfg, nil
}

type loader struct {
	file    string
	dir     string
	opts    Options
	errs    Errors
	aliases int // nodes reached through aliases so far
}

func (l *loader) errorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: l.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

func (l *loader) parse(data []byte) *Config {
	if len(data) > MaxConfigBytes {
		l.errorf(nil, "the file is %d bytes; the limit is %d", len(data), MaxConfigBytes)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.errs = append(l.errs, &Error{File: l.file, Line: 1, Column: 1,
				Msg: "the file is empty; a config needs `version: 1` and `channels`"})
			return nil
		}
		l.yamlError(data, err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			l.yamlError(data, err)
		} else {
			l.errorf(&extra, "a second YAML document; a config file holds exactly one")
		}
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	cfg := &Config{File: l.file, Defaults: Defaults{ScriptTimeout: router.DefaultTimeout,
		Backlog: engine.BacklogPolicy{MaxBacklog: engine.DefaultMaxBacklog}}}
	var channels *yaml.Node
	fields := map[string]func(k, v *yaml.Node){
		"version":  func(_, v *yaml.Node) { cfg.Version, _ = l.integer(v, "version") },
		"defaults": func(_, v *yaml.Node) { l.defaults(v, &cfg.Defaults) },
		"channels": func(_, v *yaml.Node) { channels = v },
		"nats":     func(_, v *yaml.Node) { cfg.NATS = l.nats(v) },
	}
	if !l.mapping(root, RootKeys, fields, l.opts.ExtraKeys...) {
		return cfg
	}
	if v := l.resolve(l.valueOf(root, "version")); v != nil && v.Tag == "!!int" && cfg.Version != Version {
		l.errorf(v, "unsupported version %s; this build reads version %d", v.Value, Version)
	}
	if channels != nil {
		l.channels(channels, cfg)
	}
	return cfg
}

func (l *loader) yamlError(data []byte, err error) {
	l.errs = append(l.errs, YAMLErrors(l.file, data, err)...)
}

// syntaxSearchBytes bounds how much syntaxLine parses in all: each step
// parses a whole prefix, so a search costs up to lines × size.
const syntaxSearchBytes = 4 << 20

// syntaxLine returns the line (1-based, and its text) where data stops being
// YAML: the one after the longest prefix of whole lines that parses, every
// longer prefix failing. yaml.v3's errors name the line where the enclosing
// construct starts, and for parser errors one line early (go-yaml/yaml#205);
// this is the line an editor should jump to. It returns 0, for the caller to
// fall back on yaml.v3's line, when the search would parse more than
// syntaxSearchBytes, when lines end in a lone CR (which yaml.v3 counts as a
// line break too), or if data parses.
func syntaxLine(data []byte) (int, []byte) {
	if bytes.Count(data, []byte("\r")) > bytes.Count(data, []byte("\r\n")) || parsesAsYAML(data) {
		return 0, nil
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	end, budget := len(data), syntaxSearchBytes
	for k := len(lines) - 1; k >= 0; k-- {
		end -= len(lines[k])
		if budget -= end; budget < 0 {
			return 0, nil
		}
		if parsesAsYAML(data[:end]) {
			return k + 1, bytes.TrimRight(lines[k], "\r\n")
		}
	}
	return 0, nil // not reached: the empty prefix parses
}

// parsesAsYAML reports whether every document in data parses.
func parsesAsYAML(data []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// resolve follows aliases, within the aliasing budget.
func (l *loader) resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		l.aliases += countNodes(n.Alias, maxAliasNodes)
		if l.aliases > maxAliasNodes {
			l.errorf(n, "excessive aliasing: more than %d nodes reached through aliases", maxAliasNodes)
			return nil
		}
		n = n.Alias
	}
	return n
}

// countNodes counts the nodes under n, aliases expanded, stopping past limit.
func countNodes(n *yaml.Node, limit int) int {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return 1 + countNodes(n.Alias, limit-1)
	}
	count := 1
	for _, c := range n.Content {
		if count > limit {
			break
		}
		count += countNodes(c, limit-count)
	}
	return count
}

// mapping walks a mapping node strictly, as m declares it: every key must
// be one of m's (or of extra, keys accepted and ignored), none may repeat,
// and the required ones must be there. fields handles each of m's keys:
// exactly those, which [checkHandled] checks. It reports whether n was a
// mapping.
func (l *loader) mapping(n *yaml.Node, m *Mapping, fields map[string]func(k, v *yaml.Node), extra ...string) bool {
	if err := checkHandled(m, fields); err != nil {
		l.errorf(n, "%v", err)
		return false
	}
	known := m.Keys()
	for _, k := range extra {
		if !m.has(k) {
			known = append(known, k)
		}
	}
	slices.Sort(known)
	what := m.What
	n = l.resolve(n)
	if n == nil {
		return false
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "%s must be a mapping, got %s", what, kindName(n))
		return false
	}
	seen := map[string]*yaml.Node{}
	merged := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.errorf(k, "%s: keys must be plain words", what)
			continue
		}
		if k.Value == "<<" {
			l.errorf(k, "merge keys (<<) are not supported; repeat the keys or use an alias for the whole value")
			merged = true
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			l.errorf(k, "%s: duplicate key %q (first at line %d)", what, k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		if !slices.Contains(known, k.Value) {
			l.errorf(k, "%s: unknown key %q (known: %s)", what, k.Value, strings.Join(known, ", "))
			continue
		}
		if fn := fields[k.Value]; fn != nil {
			fn(k, v)
		}
	}
	for _, r := range m.required() {
		if _, ok := seen[r]; !ok && !merged {
			l.errorf(n, "%s: missing %q", what, r)
		}
	}
	return true
}

func (l *loader) valueOf(m *yaml.Node, key string) *yaml.Node {
	m = l.resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// checkHandled reports an error unless fields handles exactly the keys m
// declares: a key declared and not read, or read and not declared (so
// missing from the schema), is a bug in this package that any load of a
// mapping of that kind shows, and so the package's load tests.
func checkHandled(m *Mapping, fields map[string]func(k, v *yaml.Node)) error {
	if len(fields) == len(m.Fields) {
		ok := true
		for _, f := range m.Fields {
			if fields[f.Key] == nil {
				ok = false
			}
		}
		if ok {
			return nil
		}
	}
	handled := make([]string, 0, len(fields))
	for k := range fields {
		handled = append(handled, k)
	}
	slices.Sort(handled)
	return fmt.Errorf("internal error: the loader reads %s's keys %v but declares %v", m.What, handled, m.Keys())
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), n.Value)
	}
	return "an alias"
}

func (l *loader) scalar(n *yaml.Node, what string) (*yaml.Node, bool) {
	n = l.resolve(n)
	if n == nil {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.errorf(n, "%s must be a value, got %s", what, kindName(n))
		return nil, false
	}
	return n, true
}

func (l *loader) str(n *yaml.Node, what string) string {
	s, ok := l.scalar(n, what)
	if !ok {
		return ""
	}
	return s.Value
}

func (l *loader) integer(n *yaml.Node, what string) (int, bool) {
	s, ok := l.scalar(n, what)
	if !ok {
		return 0, false
	}
	if s.Tag != "!!int" {
		l.errorf(s, "%s must be a whole number, got %s", what, kindName(s))
		return 0, false
	}
	v, err := strconv.ParseInt(s.Value, 0, 32)
	if err != nil {
		l.errorf(s, "%s: %q is out of range", what, s.Value)
		return 0, false
	}
	return int(v), true
}

func (l *loader) rate(n *yaml.Node, what string) float64 {
	s, ok := l.scalar(n, what)
	if !ok {
		return 0
	}
	if s.Tag != "!!int" && s.Tag != "!!float" {
		l.errorf(s, "%s must be a number from 0 to 1, got %s", what, kindName(s))
		return 0
	}
	v, err := strconv.ParseFloat(s.Value, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
		l.errorf(s, "%s must be a number from 0 to 1, got %s", what, s.Value)
		return 0
	}
	return v
}

// duration reads a Go duration ("50ms"); positive requires it above zero.
func (l *loader) duration(n *yaml.Node, what string, positive bool) time.Duration {
	s, ok := l.scalar(n, what)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s.Value)
	switch {
	case err != nil:
		l.errorf(s, "%s: %q is not a duration (write it like 50ms, 2s or 1m30s)", what, s.Value)
	case positive && d <= 0:
		l.errorf(s, "%s must be above zero, got %s", what, s.Value)
	case d < 0:
		l.errorf(s, "%s cannot be negative, got %s", what, s.Value)
	}
	return d
}

func (l *loader) defaults(n *yaml.Node, d *Defaults) {
	fields := map[string]func(k, v *yaml.Node){
		"script_timeout": func(_, v *yaml.Node) {
			if t := l.duration(v, "defaults.script_timeout", true); t > 0 {
				d.ScriptTimeout = t
			}
		},
	}
	l.backlogFields(fields, "defaults.", &d.Backlog)
	l.mapping(n, defaultsKeys, fields)
}

// backlogFields adds the keys of a backlog policy (max_backlog, when_full,
// schedule_to_start) to fields: each one given sets its part of p, and a
// bad value is reported (named prefix+key) and leaves p as it was.
func (l *loader) backlogFields(fields map[string]func(k, v *yaml.Node), prefix string, p *engine.BacklogPolicy) {
	fields["max_backlog"] = func(_, v *yaml.Node) {
		n, ok := l.integer(v, prefix+"max_backlog")
		switch {
		case ok && n < 1:
			l.errorf(v, "%smax_backlog must be 1 or more, got %s", prefix, v.Value)
		case ok:
			p.MaxBacklog = n
		}
	}
	fields["when_full"] = func(_, v *yaml.Node) {
		s, ok := l.scalar(v, prefix+"when_full")
		if !ok {
			return
		}
		switch s.Value {
		case WhenFullWait:
			p.FailWhenFull = false
		case WhenFullFail:
			p.FailWhenFull = true
		default:
			l.errorf(s, "%swhen_full must be %s (the default) or %s, got %q", prefix, WhenFullWait, WhenFullFail, s.Value)
		}
	}
	fields["schedule_to_start"] = func(_, v *yaml.Node) {
		if d := l.duration(v, prefix+"schedule_to_start", true); d > 0 {
			p.ScheduleToStart = d
		}
	}
}

func (l *loader) channels(n *yaml.Node, cfg *Config) {
	n = l.resolve(n)
	if n == nil {
		return
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, "channels must be a list, got %s", kindName(n))
		return
	}
	if len(n.Content) == 0 {
		l.errorf(n, "channels is empty; declare at least one channel")
		return
	}
	seen := map[engine.ChannelName]int{}
	for _, cn := range n.Content {
		ch := l.channel(cn, cfg.Defaults)
		if ch.Name.IsZero() {
			continue
		}
		if line, dup := seen[ch.Name]; dup {
			l.errorf(cn, "duplicate channel %s (first at line %d)", ch.Name.Short(), line)
			continue
		}
		seen[ch.Name] = ch.Pos.Line
		cfg.Channels = append(cfg.Channels, ch)
	}
}

// channel reads one channel; its Name is zero when the name is invalid.
func (l *loader) channel(n *yaml.Node, defaults Defaults) Channel {
	n = l.resolve(n)
	if n == nil {
		return Channel{}
	}
	ch := Channel{Pos: Position{n.Line, n.Column}, ScriptTimeout: defaults.ScriptTimeout, Backlog: defaults.Backlog}
	var ns, queue string
	var nsNode, queueNode, routing *yaml.Node
	fields := map[string]func(k, v *yaml.Node){
		"namespace":      func(_, v *yaml.Node) { ns, nsNode = l.str(v, "namespace"), v },
		"task_queue":     func(_, v *yaml.Node) { queue, queueNode = l.str(v, "task_queue"), v },
		"routing":        func(_, v *yaml.Node) { routing = v },
		"script_timeout": func(_, v *yaml.Node) { ch.ScriptTimeout = l.duration(v, "script_timeout", true) },
		"workers":        func(_, v *yaml.Node) { ch.Workers = l.workers(v) },
	}
	l.backlogFields(fields, "", &ch.Backlog)
	if !l.mapping(n, channelKeys, fields) {
		return ch
	}
	if nsNode != nil && queueNode != nil {
		name, err := engine.DispatchChannel(ns, queue)
		if err != nil {
			at := nsNode
			var ce *engine.ChannelNameError
			if errors.As(err, &ce) && ce.Part == "task queue" {
				at = queueNode
			}
			l.errorf(at, "%v", err)
		}
		ch.Name = name
	}
	if routing != nil {
		ch.Routing = l.routing(routing)
	}
	return ch
}

func (l *loader) workers(n *yaml.Node) []Worker {
	n = l.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, "workers must be a list, got %s", kindName(n))
		return nil
	}
	var out []Worker
	seen := map[string]int{}
	for _, wn := range n.Content {
		wn = l.resolve(wn)
		if wn == nil {
			continue
		}
		w := Worker{MaxInFlight: 1, Pos: Position{wn.Line, wn.Column}}
		var idNode, behaviorNode, execNode, serveNode, restartNode *yaml.Node
		l.mapping(wn, workerKeys, map[string]func(k, v *yaml.Node){
			"id": func(_, v *yaml.Node) { w.ID, idNode = l.str(v, "worker id"), v },
			"max_in_flight": func(_, v *yaml.Node) {
				n, ok := l.integer(v, "max_in_flight")
				w.MaxInFlight = n
				if ok && n < 1 {
					l.errorf(v, "max_in_flight must be 1 or more, got %s", v.Value)
				}
			},
			"tags":     func(_, v *yaml.Node) { w.Tags = l.tags(v) },
			"labels":   func(_, v *yaml.Node) { w.Labels = l.labels(v) },
			"behavior": func(_, v *yaml.Node) { w.Behavior, behaviorNode = l.behavior(v), v },
			"exec":     func(_, v *yaml.Node) { w.Exec, execNode = l.exec(v), v },
			"serve": func(_, v *yaml.Node) {
				w.Serve, serveNode = l.boolean(v, "serve"), v
			},
			"restart_after": func(_, v *yaml.Node) {
				w.RestartAfter, restartNode = l.duration(v, "restart_after", true), v
			},
		})
		switch {
		case execNode != nil && behaviorNode != nil:
			l.errorf(behaviorNode, "behavior is for simulated workers; worker %q runs a real program (exec)", w.ID)
		case execNode == nil && serveNode != nil:
			l.errorf(serveNode, "serve needs exec: the program to keep running")
		case execNode == nil && restartNode != nil:
			l.errorf(restartNode, "restart_after at a worker's level is for exec workers; a simulated one takes it under behavior")
		}
		if idNode != nil {
			if w.ID == "" || strings.TrimSpace(w.ID) != w.ID {
				l.errorf(idNode, "worker id %q must be non-empty, without surrounding spaces", w.ID)
			} else if line, dup := seen[w.ID]; dup {
				l.errorf(idNode, "duplicate worker id %q in this channel (first at line %d)", w.ID, line)
			}
			seen[w.ID] = idNode.Line
		}
		out = append(out, w)
	}
	return out
}

// nats reads the nats key.
func (l *loader) nats(n *yaml.Node) *NATS {
	n = l.resolve(n)
	if n == nil {
		return nil
	}
	c := &NATS{Pos: Position{n.Line, n.Column}}
	path := func(v *yaml.Node, what string) string {
		s := l.str(v, what)
		if s != "" && !filepath.IsAbs(s) {
			s = filepath.Join(l.dir, s)
		}
		return s
	}
	var listenNode *yaml.Node
	joinOnly := map[string]*yaml.Node{}
	only := func(key string, f func(v *yaml.Node)) func(k, v *yaml.Node) {
		return func(_, v *yaml.Node) { joinOnly[key] = v; f(v) }
	}
	l.mapping(n, natsKeys, map[string]func(k, v *yaml.Node){
		"url": func(_, v *yaml.Node) {
			c.URL = l.str(v, "nats.url")
			for _, u := range strings.Split(c.URL, ",") {
				if !strings.Contains(u, "://") && u != "" {
					l.errorf(v, "nats.url %q: want nats://HOST:PORT (or tls://, ws://), several separated by commas", u)
					break
				}
			}
		},
		"listen": func(_, v *yaml.Node) {
			c.Listen, listenNode = l.str(v, "nats.listen"), v
			if _, _, err := net.SplitHostPort(c.Listen); err != nil {
				l.errorf(v, "nats.listen %q: want HOST:PORT, as in 127.0.0.1:4222 (port 0 picks a free one)", c.Listen)
			}
		},
		"creds":        only("creds", func(v *yaml.Node) { c.Creds = path(v, "nats.creds") }),
		"system_creds": only("system_creds", func(v *yaml.Node) { c.SystemCreds = path(v, "nats.system_creds") }),
		"tls": only("tls", func(v *yaml.Node) {
			l.mapping(v, natsTLSKeys, map[string]func(k, v *yaml.Node){
				"ca":   func(_, v *yaml.Node) { c.CA = path(v, "nats.tls.ca") },
				"cert": func(_, v *yaml.Node) { c.Cert = path(v, "nats.tls.cert") },
				"key":  func(_, v *yaml.Node) { c.Key = path(v, "nats.tls.key") },
			})
			if (c.Cert == "") != (c.Key == "") {
				l.errorf(v, "nats.tls: cert and key go together")
			}
		}),
		"heartbeat_timeout": func(_, v *yaml.Node) {
			c.HeartbeatTimeout = l.duration(v, "nats.heartbeat_timeout", true)
		},
	})
	if c.URL != "" && listenNode != nil {
		l.errorf(listenNode, "nats: url joins a server and listen starts one; give one")
	}
	if c.URL == "" {
		for _, key := range []string{"creds", "system_creds", "tls"} {
			if v := joinOnly[key]; v != nil {
				l.errorf(v, "nats.%s is for joining a server (nats.url); the embedded server needs none", key)
			}
		}
	}
	return c
}

// exec reads a worker's program and arguments: a list of strings, the
// first the program.
func (l *loader) exec(n *yaml.Node) []string {
	n = l.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errorf(n, "exec must be a list: the program, then its arguments, as in [./send.sh, --fast]")
		return nil
	}
	var out []string
	for i, a := range n.Content {
		s := l.str(a, "exec argument")
		if i == 0 {
			if s == "" {
				l.errorf(a, "exec's program must be non-empty")
				return nil
			}
			if strings.ContainsRune(s, '/') && !filepath.IsAbs(s) {
				// Absolute: Join(".", "./x.sh") is "x.sh", which a
				// lookup would search for in PATH.
				if dir, err := filepath.Abs(l.dir); err == nil {
					s = filepath.Join(dir, s)
				} else {
					s = filepath.Join(l.dir, s)
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// boolean reads true or false.
func (l *loader) boolean(n *yaml.Node, what string) bool {
	s, ok := l.scalar(n, what)
	if !ok {
		return false
	}
	switch s.Value {
	case "true":
		return true
	case "false":
		return false
	}
	l.errorf(s, "%s must be true or false, got %q", what, s.Value)
	return false
}

func (l *loader) tags(n *yaml.Node) []string {
	n = l.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, "tags must be a list, got %s", kindName(n))
		return nil
	}
	var out []string
	for _, t := range n.Content {
		s := l.str(t, "tag")
		if err := CheckTag(s); err != nil {
			if t.Kind == yaml.ScalarNode && t.Tag != "!!null" {
				l.errorf(t, "%v", err)
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// labels reads a worker's labels: a mapping of strings, each label as
// engine.CheckLabel allows it, at most engine.MaxLabels of them.
func (l *loader) labels(n *yaml.Node) map[string]string {
	n = l.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "labels must be a mapping, got %s", kindName(n))
		return nil
	}
	if len(n.Content)/2 > engine.MaxLabels {
		l.errorf(n, "labels: %d labels; the limit is %d", len(n.Content)/2, engine.MaxLabels)
	}
	out := map[string]string{}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := l.resolve(n.Content[i]), l.resolve(n.Content[i+1])
		if k == nil || v == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			l.errorf(k, "labels: keys must be strings, got %s", kindName(k))
			continue
		}
		if line, dup := lines[k.Value]; dup {
			l.errorf(k, "labels: duplicate key %q (first at line %d)", k.Value, line)
			continue
		}
		lines[k.Value] = k.Line
		if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
			l.errorf(v, "label %s must be a string (quote it), got %s", k.Value, kindName(v))
			continue
		}
		at := v
		if err := engine.CheckLabel(k.Value, ""); err != nil {
			at = k
		}
		if err := engine.CheckLabel(k.Value, v.Value); err != nil {
			l.errorf(at, "%v", err)
			continue
		}
		out[k.Value] = v.Value
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// CheckTag refuses a tag no worker can carry: an empty one, or one with
// spaces around it (which a script comparing tags would never match).
func CheckTag(tag string) error {
	if tag == "" || strings.TrimSpace(tag) != tag {
		return fmt.Errorf("tag %q must be non-empty, without surrounding spaces", tag)
	}
	return nil
}

func (l *loader) behavior(n *yaml.Node) Behavior {
	var b Behavior
	l.mapping(n, behaviorKeys, map[string]func(k, v *yaml.Node){
		"latency":       func(_, v *yaml.Node) { b.Latency = l.duration(v, "latency", false) },
		"jitter":        func(_, v *yaml.Node) { b.Jitter = l.duration(v, "jitter", false) },
		"fail_rate":     func(_, v *yaml.Node) { b.FailRate = l.rate(v, "fail_rate") },
		"exit_rate":     func(_, v *yaml.Node) { b.ExitRate = l.rate(v, "exit_rate") },
		"restart_after": func(_, v *yaml.Node) { b.RestartAfter = l.duration(v, "restart_after", true) },
	})
	if b.FailRate+b.ExitRate > 1 && b.FailRate <= 1 && b.ExitRate <= 1 {
		// One draw decides: exit, else fail, else complete.
		l.errorf(n, "fail_rate %g and exit_rate %g add up to more than 1", b.FailRate, b.ExitRate)
	}
	return b
}

// routing reads {lua: PATH}, {expr: PATH} or {lang: L, source: TEXT} and
// compiles the script.
func (l *loader) routing(n *yaml.Node) Routing {
	var r Routing
	var pathNode, langNode, srcNode *yaml.Node
	files := 0
	if !l.mapping(n, routingKeys, map[string]func(k, v *yaml.Node){
		"lua":    func(_, v *yaml.Node) { r.Lang, pathNode, files = router.Lua, v, files+1 },
		"expr":   func(_, v *yaml.Node) { r.Lang, pathNode, files = router.Expr, v, files+1 },
		"lang":   func(_, v *yaml.Node) { langNode = v },
		"source": func(_, v *yaml.Node) { srcNode = v },
	}) {
		return r
	}
	n = l.resolve(n)
	switch {
	case pathNode != nil && (langNode != nil || srcNode != nil):
		l.errorf(n, "routing: give either a script file ({lua: PATH} or {expr: PATH}) or {lang, source}, not both")
	case files > 1:
		l.errorf(n, "routing: give one script file, lua or expr")
	case pathNode != nil:
		l.scriptFile(pathNode, &r)
	case langNode != nil && srcNode != nil:
		l.inlineScript(langNode, srcNode, &r)
	default:
		l.errorf(n, "routing: missing the script: {lua: PATH}, {expr: PATH} or {lang: lua|expr, source: TEXT}")
	}
	return r
}

func (l *loader) scriptFile(pathNode *yaml.Node, r *Routing) {
	rel := l.str(pathNode, "script path")
	if rel == "" {
		return
	}
	path := rel
	if !filepath.IsAbs(path) {
		path = filepath.Join(l.dir, rel)
	}
	src, err := l.opts.readFile(path, MaxScriptBytes)
	switch {
	case errors.Is(err, regularfile.ErrTooLarge):
		l.errorf(pathNode, "script %s %s", rel, errText(err))
		return
	case err != nil:
		l.errorf(pathNode, "cannot read script %s: %s", rel, errText(err))
		return
	case len(src) > MaxScriptBytes:
		l.errorf(pathNode, "script %s is %d bytes; the limit is %d", rel, len(src), MaxScriptBytes)
		return
	}
	r.Path, r.Source = path, src
	prog, err := l.opts.Compiler.Compile(r.Lang, path, src)
	if err != nil {
		l.scriptError(err, path, 0)
		return
	}
	r.Program = prog
}

func (l *loader) inlineScript(langNode, srcNode *yaml.Node, r *Routing) {
	lang, err := router.ParseLang(l.str(langNode, "lang"))
	if err != nil {
		l.errorf(langNode, "%v", err)
		return
	}
	src, ok := l.scalar(srcNode, "source")
	if !ok {
		return
	}
	if len(src.Value) > MaxScriptBytes {
		l.errorf(src, "source is %d bytes; the limit is %d", len(src.Value), MaxScriptBytes)
		return
	}
	first := InlineLineOffset(src) + 1
	r.Lang, r.Source, r.LineOffset = lang, []byte(src.Value), first-1
	prog, err := l.opts.Compiler.Compile(lang, l.file, r.Source)
	if err != nil {
		es := ScriptErrors(err, l.file, first-1)
		if e := es[0]; e.Line == 0 { // an error of the whole script (no route function): at the source
			e.Line, e.Column = src.Line, src.Column
		}
		l.errs = append(l.errs, es...)
		return
	}
	r.Program = prog
}

// scriptError reports a compile error at its place in the script, and
// each further problem the compiler found with it.
func (l *loader) scriptError(err error, file string, lineOffset int) {
	l.errs = append(l.errs, ScriptErrors(err, file, lineOffset)...)
}

// ScriptErrors places the compile errors of a script in file, whose lines
// start after line lineOffset of it (0 for a script file of its own): one
// for err, and one for each further problem of a [*router.ScriptError]
// (its More), in order. An inline script's errors have no column, its
// columns not being the file's.
func ScriptErrors(err error, file string, lineOffset int) []*Error {
	out := []*Error{scriptError(err, file, lineOffset)}
	var se *router.ScriptError
	if errors.As(err, &se) {
		for _, m := range se.More {
			out = append(out, scriptError(m, file, lineOffset))
		}
	}
	return out
}

// scriptError places a compile error in file; the script's lines start
// after line lineOffset of it.
func scriptError(err error, file string, lineOffset int) *Error {
	e := &Error{File: file, Msg: err.Error(), Err: err}
	var se *router.ScriptError
	if errors.As(err, &se) {
		e.Msg = se.Summary()
		if se.Line > 0 {
			e.Line = se.Line + lineOffset
		}
		// An inline script's columns are not the YAML file's: no column,
		// and no caret under its source line, then.
		if lineOffset == 0 {
			e.Column, e.Caret = se.Column, se.Column
		}
		e.Snippet = se.Snippet
	}
	return e
}

// InlineLineOffset returns the line of the YAML file before the first
// line of the script that src, a scalar, holds: its own line for a flow
// scalar, and the line of its | or > for a block scalar, whose text starts
// on the next line. Line n of the script is line n+offset of the file.
func InlineLineOffset(src *yaml.Node) int {
	if src.Style == yaml.LiteralStyle || src.Style == yaml.FoldedStyle {
		return src.Line
	}
	return src.Line - 1
}

// errText is an OS error without the path it repeats.
func errText(err error) string { return regularfile.Reason(err) }
