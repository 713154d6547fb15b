// Package config loads the YAML that declares dispatch channels: their
// routing scripts, limits and, for local runs, their workers.
//
// Loading is strict and complete: unknown keys, wrong types, duplicates, bad
// channel names, missing or broken scripts and out-of-range limits are all
// reported at once, each as FILE:LINE:COL: message (see [Errors]). A loaded
// [Config] holds every channel's compiled routing program, so a config that
// loads is a config that can serve.
package config

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// Version is the only config version this build reads.
const Version = 1

// Limits on what Load reads.
const (
	MaxConfigBytes = 1 << 20 // a config file
	MaxScriptBytes = 1 << 20 // a script file or inline source
	maxAliasNodes  = 10_000  // nodes reached through YAML aliases
)

// Config is a loaded, validated configuration.
type Config struct {
	File     string // the path it was loaded from
	Version  int
	Defaults Defaults
	Channels []Channel
	// NATS is where remote workers reach dispatch; nil when the config has
	// no nats key.
	NATS *NATS

	hash string // of the file's content
}

// NATS says how dispatch reaches the workers that are programs of their
// own: the NATS server it starts, or the one it joins. Paths are resolved
// from the config file's directory.
type NATS struct {
	// URL joins a server (or a cluster: URLs separated by commas) rather
	// than starting one.
	URL string
	// Listen is where the embedded server listens when URL is empty;
	// empty means 127.0.0.1:4222.
	Listen string
	// Creds is a credentials file for the account the workers are in
	// (nats.UserCredentials); with URL only.
	Creds string
	// SystemCreds is a credentials file for the server's system account,
	// from which dispatch reads the disconnect advisories that tell it a
	// worker's connection is gone. With URL only; without it, workers must
	// send heartbeats (dispatch worker --heartbeat) and HeartbeatTimeout
	// applies.
	SystemCreds string
	// TLS: a CA file to trust, and a client certificate and key, each
	// optional; with URL only.
	CA, Cert, Key string
	// HeartbeatTimeout is how long a worker that sends heartbeats may be
	// silent before it is deemed gone; 0 means three of its heartbeats.
	HeartbeatTimeout time.Duration
	Pos              Position
}

// Defaults apply to every channel that does not set its own.
type Defaults struct {
	ScriptTimeout time.Duration // default router.DefaultTimeout
	// Backlog is the backlog policy of a channel that sets none of its
	// keys: max_backlog (default engine.DefaultMaxBacklog), when_full
	// (default wait: FailWhenFull false) and schedule_to_start (default
	// none: 0).
	Backlog engine.BacklogPolicy
}

// Channel is one dispatch channel.
type Channel struct {
	Name          engine.ChannelName
	Routing       Routing
	ScriptTimeout time.Duration // after defaults
	// Backlog is how the channel's activities wait when no worker can take
	// them now: each of max_backlog, when_full and schedule_to_start is the
	// channel's own, else the one under defaults. MaxBacklog is always set
	// (1 or more).
	Backlog engine.BacklogPolicy
	Workers []Worker
	Pos     Position // where the channel is declared
}

// When_full values: what a channel does with an activity no worker can take
// now.
const (
	WhenFullWait = "wait" // it waits in the channel's backlog (the default)
	WhenFullFail = "fail" // it fails at once with NoWorkersAvailable
)

// WhenFull returns p's when_full as the config writes it: "wait" or "fail".
func WhenFull(p engine.BacklogPolicy) string {
	if p.FailWhenFull {
		return WhenFullFail
	}
	return WhenFullWait
}

// Routing is a channel's compiled routing script.
type Routing struct {
	Lang router.Lang
	// Path is the script file as written in the config, resolved against the
	// config file's directory; empty for an inline source.
	Path    string
	Source  []byte
	Program *router.Program
	// LineOffset is, for an inline source, the line of the config file
	// before the script's first: the script's line n is the file's line
	// n+LineOffset. Its compile errors are placed there, and so are its
	// run-time errors ([Channel.Router]).
	LineOffset int
}

// SourceName is how the script is named in decisions and errors: its path,
// or "FILE:LINE (inline)" for an inline source.
func (r Routing) SourceName(c Channel, file string) string {
	if r.Path != "" {
		return r.Path
	}
	return fmt.Sprintf("%s:%d (inline)", file, c.Pos.Line)
}

// Router returns the channel's router: its program bound to its source name
// and script timeout. An inline script's run-time errors are placed in
// file, at its lines there.
func (c Channel) Router(file string) *router.Script {
	if c.Routing.Path == "" {
		return router.NewInlineScript(c.Routing.Program, c.Routing.SourceName(c, file), c.ScriptTimeout, file, c.Routing.LineOffset)
	}
	return router.NewScript(c.Routing.Program, c.Routing.SourceName(c, file), c.ScriptTimeout)
}

// Worker is a local worker that `dispatch run` starts for a channel.
type Worker struct {
	ID          string
	MaxInFlight int // default 1
	Tags        []string
	// Labels are its key-value labels, as engine.CheckLabels allows them;
	// nil when it has none.
	Labels   map[string]string
	Behavior Behavior // a simulated worker's; none with Exec
	// Exec, if set, makes the worker a real program rather than a
	// simulation: the program and its arguments, run by `dispatch worker`
	// (a path with a slash is taken from the config file's directory).
	Exec []string
	// Serve keeps one Exec program running, speaking JSON lines, rather
	// than one per activity.
	Serve bool
	// RestartAfter is how long after an Exec program's worker dies it is
	// started again; 0 leaves it dead.
	RestartAfter time.Duration
	Pos          Position
}

// Behavior is how a simulated local worker treats what it gets. The zero
// value completes at once, echoing the input.
type Behavior struct {
	Latency      time.Duration // time to answer
	Jitter       time.Duration // uniform extra time in [0, Jitter)
	FailRate     float64       // share of activities answered Failed
	ExitRate     float64       // share on which the worker exits instead
	RestartAfter time.Duration // 0: an exited worker stays gone
}

// Position is a place in a file, 1-based.
type Position struct {
	Line, Column int
}

// Error is one problem in a config or script file.
type Error struct {
	File   string
	Line   int // 0 when unknown
	Column int // 0 when unknown
	Msg    string
	// Snippet is the source line of a script error, shown below the
	// message by Error and left out by Short; "" when there is none.
	// Caret is the column of Snippet to put a caret under, 0 for none (an
	// inline script's columns are not the file's).
	Snippet string
	Caret   int
	Err     error // the underlying error, such as a *router.ScriptError
}

// Error implements error: "FILE:LINE:COL: message", then the script's
// source line and a caret under its column when there are.
func (e *Error) Error() string { return e.Short() + router.Excerpt(e.Snippet, e.Caret) }

// Short is the error on one line, for a log: "FILE:LINE:COL: message",
// without the source line and caret.
func (e *Error) Short() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem Load found, in file and line order.
type Errors []*Error

// Error implements error: one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Short is the problems on one line, for a log: each one's Short, joined
// by "; ".
func (es Errors) Short() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Short()
	}
	return strings.Join(lines, "; ")
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// Channel returns the channel named ch.
func (c *Config) Channel(ch engine.ChannelName) (Channel, bool) {
	for _, x := range c.Channels {
		if x.Name == ch {
			return x, true
		}
	}
	return Channel{}, false
}

// BacklogPolicies returns every channel's backlog policy by channel, for
// engine.Options.Backlog.
func (c *Config) BacklogPolicies() map[engine.ChannelName]engine.BacklogPolicy {
	out := make(map[engine.ChannelName]engine.BacklogPolicy, len(c.Channels))
	for _, ch := range c.Channels {
		out[ch.Name] = ch.Backlog
	}
	return out
}

// ParseChannelFlag parses a channel as the CLI and requests name it:
// "NAMESPACE/TASK_QUEUE", or the engine's "aion.dispatch.NAMESPACE.TASK_QUEUE"
// that journals and logs show, so that either can be pasted.
func ParseChannelFlag(s string) (engine.ChannelName, error) {
	if strings.HasPrefix(s, "aion.dispatch.") {
		return engine.ParseChannelName(s)
	}
	ns, queue, ok := strings.Cut(s, "/")
	if !ok {
		return engine.ChannelName{}, fmt.Errorf("channel %q: want NAMESPACE/TASK_QUEUE (or aion.dispatch.NAMESPACE.TASK_QUEUE)", s)
	}
	return engine.DispatchChannel(ns, queue)
}
