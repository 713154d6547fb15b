package config

import (
	"math"
	"slices"

	"github.com/aion-dispatch/dispatch/router"
)

// Kind is what a key's value is in the config file.
type Kind int

// The kinds of values.
const (
	KindString   Kind = iota // a string
	KindInt                  // a whole number, between Min and Max
	KindRate                 // a number from 0 to 1
	KindDuration             // a Go duration: 50ms, 2s, 1m30s
	KindBool                 // true or false
	KindStrings              // a list of strings
	KindMapping              // a mapping of the keys of Fields
	KindList                 // a list of mappings of the keys of Fields
	KindLabels               // a mapping of strings to strings, as engine.CheckLabels allows
)

// Field declares one key of a mapping of the config file: its name, the
// kind of its value and what it means. The loader walks each mapping by
// its [Mapping] (a key not declared is unknown, a Required one absent is
// missing), and [Schema] renders the same declarations as JSON Schema, so
// the two cannot disagree on which keys there are.
type Field struct {
	Key      string
	Kind     Kind
	Required bool
	Doc      string
	// Enum, for a KindString, is the only values it takes.
	Enum []string
	// Min and Max bound a KindInt.
	Min, Max int64
	// Positive, for a KindDuration, requires it above zero; otherwise it
	// may be zero but not negative.
	Positive bool
	// NonEmpty requires a KindString, a KindStrings' items, or a list
	// (KindStrings, KindList) to be non-empty.
	NonEmpty bool
	// Trimmed, for a KindString or KindStrings, refuses spaces around it
	// (around each item).
	Trimmed bool
	// Fields is the mapping of a KindMapping, or of each item of a
	// KindList.
	Fields *Mapping
}

// Mapping declares a mapping of the config file: its keys, and how they
// go together beyond each one's own value.
type Mapping struct {
	What   string // how errors name it: "channel", "nats.tls"
	Doc    string
	Fields []Field
	// OneOf, when set, lists groups of keys: a mapping gives exactly one
	// group, whole, and no key of another.
	OneOf [][]string
	// Requires maps a key to the keys it needs beside it.
	Requires map[string][]string
	// Exclusive lists pairs of keys that cannot both be given.
	Exclusive [][2]string
}

// Keys returns the mapping's keys, in declaration order.
func (m *Mapping) Keys() []string {
	keys := make([]string, len(m.Fields))
	for i, f := range m.Fields {
		keys[i] = f.Key
	}
	return keys
}

// required returns the keys the mapping must have.
func (m *Mapping) required() []string {
	var out []string
	for _, f := range m.Fields {
		if f.Required {
			out = append(out, f.Key)
		}
	}
	return out
}

// has reports whether the mapping declares key.
func (m *Mapping) has(key string) bool { return slices.Contains(m.Keys(), key) }

// maxWhole is the largest whole number the loader reads.
const maxWhole = math.MaxInt32

// backlogKeys are the keys of a backlog policy, in defaults and in a
// channel.
func backlogKeys(scope string) []Field {
	return []Field{
		{Key: "max_backlog", Kind: KindInt, Min: 1, Max: maxWhole,
			Doc: "How many activities may wait in the channel's backlog at once; a dispatch that would be one more fails at once. Default: " + scope + "10000."},
		{Key: "when_full", Kind: KindString, Enum: []string{WhenFullWait, WhenFullFail},
			Doc: "What becomes of an activity no worker can take now: wait in the backlog, or fail at once with NoWorkersAvailable. Default: " + scope + "wait."},
		{Key: "schedule_to_start", Kind: KindDuration, Positive: true,
			Doc: "How long an activity may wait in the backlog for a worker before it fails with a schedule-to-start timeout. Default: " + scope + "none."},
	}
}

// The mappings of the config file, from the top down.
var (
	// RootKeys is the top level of the config file.
	RootKeys = &Mapping{What: "the config", Doc: "A dispatch config: its channels, their routing scripts, limits and local workers (docs/config.md).",
		Fields: []Field{
			{Key: "version", Kind: KindInt, Required: true, Min: Version, Max: Version, Doc: "The config version: 1."},
			{Key: "defaults", Kind: KindMapping, Fields: defaultsKeys, Doc: "Defaults for every channel that does not set its own."},
			{Key: "channels", Kind: KindList, Required: true, NonEmpty: true, Fields: channelKeys, Doc: "The channels, at least one."},
			{Key: "nats", Kind: KindMapping, Fields: natsKeys, Doc: "Where workers beyond the process reach dispatch: the NATS server it starts, or the one it joins."},
		}}

	defaultsKeys = &Mapping{What: "defaults", Doc: "Defaults for every channel that does not set its own.",
		Fields: append([]Field{
			{Key: "script_timeout", Kind: KindDuration, Positive: true, Doc: "The deadline of one call of a channel's script. Default: 50ms."},
		}, backlogKeys("")...)}

	channelKeys = &Mapping{What: "channel", Doc: "A dispatch channel: NAMESPACE/TASK_QUEUE, its routing script and workers.",
		Fields: append([]Field{
			{Key: "namespace", Kind: KindString, Required: true, NonEmpty: true,
				Doc: "The channel's namespace: no whitespace, control characters, '.', '*' or '>'."},
			{Key: "task_queue", Kind: KindString, Required: true, NonEmpty: true,
				Doc: "The channel's task queue: the namespace's rules. A namespace/task_queue pair appears once."},
			{Key: "routing", Kind: KindMapping, Required: true, Fields: routingKeys,
				Doc: "The routing script: {lua: PATH}, {expr: PATH} or {lang: lua|expr, source: TEXT}."},
			{Key: "script_timeout", Kind: KindDuration, Positive: true,
				Doc: "The deadline of one call of the script. Default: defaults.script_timeout."},
			{Key: "workers", Kind: KindList, Fields: workerKeys,
				Doc: "The local workers dispatch run starts: simulated, or real programs (exec)."},
		}, backlogKeys("defaults, else ")...)}

	routingKeys = &Mapping{What: "routing", Doc: "A script file ({lua: PATH} or {expr: PATH}) or an inline script ({lang, source}).",
		Fields: []Field{
			{Key: "lua", Kind: KindString, NonEmpty: true, Doc: "A Lua script file, relative to the config file's directory."},
			{Key: "expr", Kind: KindString, NonEmpty: true, Doc: "An expr script file, relative to the config file's directory."},
			{Key: "lang", Kind: KindString, Enum: []string{string(router.Lua), string(router.Expr)}, Doc: "The inline script's language."},
			{Key: "source", Kind: KindString, Doc: "The inline script (a block scalar, source: |, suits several lines)."},
		},
		OneOf: [][]string{{"lua"}, {"expr"}, {"lang", "source"}}}

	workerKeys = &Mapping{What: "worker", Doc: "A local worker: simulated (behavior) or a real program (exec).",
		Fields: []Field{
			{Key: "id", Kind: KindString, Required: true, NonEmpty: true, Trimmed: true,
				Doc: "The worker's id, unique within the channel, without surrounding spaces."},
			{Key: "max_in_flight", Kind: KindInt, Min: 1, Max: maxWhole, Doc: "The activities it takes at once. Default: 1."},
			{Key: "tags", Kind: KindStrings, NonEmpty: false, Trimmed: true, Doc: "Its tags, each non-empty, without surrounding spaces."},
			{Key: "labels", Kind: KindLabels,
				Doc: "Its labels, a mapping of strings (region: eu) scripts read as labels: at most 32, keys non-empty and at most 63 bytes, values at most 255, neither with surrounding spaces."},
			{Key: "behavior", Kind: KindMapping, Fields: behaviorKeys, Doc: "How the simulated worker answers; not with exec."},
			{Key: "exec", Kind: KindStrings, NonEmpty: true,
				Doc: "The worker is a real program: the program (a path with a slash is taken from the config file's directory), then its arguments."},
			{Key: "serve", Kind: KindBool, Doc: "With exec: keep one program running and speak JSON lines with it."},
			{Key: "restart_after", Kind: KindDuration, Positive: true, Doc: "With exec: start the program's worker again this long after it dies."},
		},
		Requires:  map[string][]string{"serve": {"exec"}, "restart_after": {"exec"}},
		Exclusive: [][2]string{{"exec", "behavior"}}}

	behaviorKeys = &Mapping{What: "behavior", Doc: "How a simulated worker answers; each key optional.",
		Fields: []Field{
			{Key: "latency", Kind: KindDuration, Doc: "Time to answer. Default: 0."},
			{Key: "jitter", Kind: KindDuration, Doc: "A uniform extra time in [0, jitter) per activity. Default: 0."},
			{Key: "fail_rate", Kind: KindRate, Doc: "Share of activities answered Failed. Default: 0."},
			{Key: "exit_rate", Kind: KindRate, Doc: "Share of activities on which the worker exits instead of answering. fail_rate + exit_rate is at most 1."},
			{Key: "restart_after", Kind: KindDuration, Positive: true, Doc: "An exited worker comes back after this long; without it, it stays gone."},
		}}

	natsKeys = &Mapping{What: "nats", Doc: "Where workers beyond the process reach dispatch. Paths are taken from the config file's directory.",
		Fields: []Field{
			{Key: "url", Kind: KindString, Doc: "Join this server (nats://, tls:// or ws:// URLs, several separated by commas) rather than start one."},
			{Key: "listen", Kind: KindString, Doc: "HOST:PORT where the embedded server listens. Default: 127.0.0.1:4222; port 0 picks a free one."},
			{Key: "creds", Kind: KindString, Doc: "With url: a credentials file for the account the workers are in."},
			{Key: "system_creds", Kind: KindString, Doc: "With url: a credentials file for the server's system account, for disconnect advisories."},
			{Key: "tls", Kind: KindMapping, Fields: natsTLSKeys, Doc: "With url: a CA file to trust, and a client certificate and key."},
			{Key: "heartbeat_timeout", Kind: KindDuration, Positive: true,
				Doc: "How long a worker that sends heartbeats may be silent before it is deemed gone. Default: three of its heartbeats."},
		},
		Requires:  map[string][]string{"creds": {"url"}, "system_creds": {"url"}, "tls": {"url"}},
		Exclusive: [][2]string{{"url", "listen"}}}

	natsTLSKeys = &Mapping{What: "nats.tls", Doc: "TLS to the NATS server joined.",
		Fields: []Field{
			{Key: "ca", Kind: KindString, Doc: "A CA file to trust."},
			{Key: "cert", Kind: KindString, Doc: "A client certificate; with key."},
			{Key: "key", Kind: KindString, Doc: "The client certificate's key; with cert."},
		},
		Requires: map[string][]string{"cert": {"key"}, "key": {"cert"}}}
)
