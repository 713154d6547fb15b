// Package names is the one table of what a routing script can see: the
// request's fields, a candidate's fields and methods, and the helpers, each
// with its Lua name, its expr name, its type or arguments and a line of
// documentation. The Lua sandbox registers its helpers from it, the expr
// environment declares its names from it, both languages' checks know
// names from it and suggest close ones with [DidYouMean], and the reference tables of
// docs/scripting.md are generated from it (go generate ./router/internal/names).
// It imports nothing of the project.
package names

import (
	"fmt"
	"slices"
	"sort"
)

//go:generate go run gendocs.go

// Kind is what a row names.
type Kind int

// The kinds of rows.
const (
	RequestField    Kind = iota // a field of request
	CandidateField              // a field of a candidate
	CandidateMethod             // a method of a candidate (Lua only)
	Helper                      // a helper: dispatch.NAME in Lua, a function in expr
)

// Name is one thing a script can see.
type Name struct {
	Kind Kind
	Lua  string // the name in Lua; "" when Lua has none
	Expr string // the name in expr; "" when expr has none
	// Type is what a field holds, in words both languages share; for a
	// method or helper, what it returns.
	Type string
	// Params are a method's or helper's parameters as the reference
	// writes them ("list [, tag]"); MinArgs and MaxArgs bound how many a
	// call passes, unless Variadic: then MaxArgs more may follow MinArgs.
	Params           string
	MinArgs, MaxArgs int
	Variadic         bool
	// Args are the types of the parameters, one per parameter written in
	// Params (none for a variadic row): what both languages' checks hold
	// an argument the checker can see to, at compile time.
	Args []Arg
	// Hidden marks a name the runtime needs but scripts are not told of:
	// left out of the reference, the lists in messages and suggestions.
	Hidden bool
	Doc    string // one line for the reference, in markdown
}

// Arg is the type of a helper's or method's parameter.
type Arg int

// The types of parameters.
const (
	Any       Arg = iota // anything
	List                 // a list of candidates: candidates, or a list of some of them
	String               // a string: a tag, a key, text
	Candidate            // one candidate
	Number               // a number
)

// String names the type as messages do: "a list of candidates".
func (a Arg) String() string {
	switch a {
	case List:
		return "a list of candidates"
	case String:
		return "a string"
	case Candidate:
		return "a candidate"
	case Number:
		return "a number"
	}
	return "any value"
}

// Arg returns the type of parameter i (0-based) of n: [Any] past the
// parameters the table knows.
func (n Name) Arg(i int) Arg {
	if i < 0 || i >= len(n.Args) {
		return Any
	}
	return n.Args[i]
}

// NeverWorkerID reports whether what a field holds, or a helper or
// method returns, can never be a worker id: a number, a boolean, a list.
// A script returning it could only fail, at every call.
func (n Name) NeverWorkerID() bool {
	switch n.Type {
	case "integer", "number", "boolean", "list of strings", "list of candidates", "map of strings":
		return true
	}
	return false
}

// table is every row, in the reference's order.
var table = []Name{
	{Kind: RequestField, Lua: "namespace", Expr: "namespace", Type: "string", Doc: "the activity's namespace"},
	{Kind: RequestField, Lua: "task_queue", Expr: "task_queue", Type: "string", Doc: "the activity's task queue"},
	{Kind: RequestField, Lua: "channel", Expr: "channel", Type: "string", Doc: "the channel, `aion.dispatch.NS.QUEUE`"},
	{Kind: RequestField, Lua: "workflow_id", Expr: "workflow_id", Type: "string", Doc: "the workflow the activity belongs to"},
	{Kind: RequestField, Lua: "conversation_id", Expr: "conversation_id", Type: "string", Doc: "the conversation (one activity, all its attempts)"},
	{Kind: RequestField, Lua: "attempt", Expr: "attempt", Type: "integer", Doc: "1 on the first try, +1 after each worker that exited"},
	{Kind: RequestField, Lua: "activity_type", Expr: "activity_type", Type: "string", Doc: "the activity's type"},
	{Kind: RequestField, Lua: "input_content_type", Expr: "input_content_type", Type: "string", Doc: "the payload's content type"},
	{Kind: RequestField, Lua: "input", Expr: "input", Type: "string", Doc: "the payload, as a string; decode JSON with `dispatch.json_decode` (Lua) or `fromJSON` (expr). Both fail on text that is not JSON (or that has more after the value), and the call is a routing error: check `input_content_type` first, or in Lua wrap the call in `pcall` (`local ok, v = pcall(dispatch.json_decode, request.input)`; expr has no way to catch it). `dispatch run` and `route` refuse a string input that is not JSON under a JSON content type"},

	{Kind: CandidateField, Lua: "id", Expr: "id", Type: "string", Doc: "the worker id to return"},
	{Kind: CandidateField, Lua: "in_flight", Expr: "in_flight", Type: "integer", Doc: "the worker's slots in use (activities sent to it, or being sent, and not answered): the host sends an activity only into a free slot; one that no worker can take now waits in the channel's backlog, and the script is asked again when a slot frees"},
	{Kind: CandidateField, Lua: "max_in_flight", Expr: "max_in_flight", Type: "integer", Doc: "how many slots the worker has"},
	{Kind: CandidateField, Lua: "buffer_depth", Expr: "buffer_depth", Type: "integer", Doc: "of the slots in use, the activities the worker has not picked up yet (a moment after each send); part of `in_flight`"},
	{Kind: CandidateField, Lua: "available", Expr: "available", Type: "integer", Doc: "`max_in_flight - in_flight`, never below 0"},
	{Kind: CandidateField, Lua: "tags", Expr: "tags", Type: "list of strings", Doc: "the affinity tags; in Lua `tags.NAME` is also `true` for each tag"},
	{Kind: CandidateField, Lua: "labels", Expr: "labels", Type: "map of strings", Doc: "the worker's labels, as its config or registration gives them: Lua `w.labels.region`, expr `c.labels.region` or `c.labels[\"region\"]`; a label the worker lacks is `nil` in Lua and `\"\"` in expr (test for it with `\"region\" in c.labels`); no worker has more than 32"},
	{Kind: CandidateField, Lua: "latency_ewma", Expr: "latency_ewma", Type: "number", Doc: "observed: the moving average, in seconds, of how long the worker took to answer this channel's activities (completed or failed), each sample counting half as much every 10 s; 0 means nothing observed yet (see [Observed figures](#observed-figures)); replay and what-if see the recorded value"},
	{Kind: CandidateField, Lua: "latency_peak_ewma", Expr: "latency_peak_ewma", Type: "number", Doc: "observed: Finagle's peak EWMA of the same samples, in seconds: a slower sample raises it at once, and it decays with a 10 s half-life (towards 0 while nothing is answered, so an idle worker is tried again); 0 means nothing observed yet; replay and what-if see the recorded value"},
	{Kind: CandidateField, Lua: "error_rate", Expr: "error_rate", Type: "number", Doc: "observed: the moving average (10 s half-life) of failed answers among answers, 0..1, decaying towards 0 while the worker answers nothing (so a worker skipped for its errors is tried again); exits are not answers; 0 also when nothing was observed yet; replay and what-if see the recorded value"},
	{Kind: CandidateField, Lua: "exits", Expr: "exits", Type: "integer", Doc: "observed: how many of this channel's activities the worker left unanswered (it exited, its connection ended, it lost the request) in the last minute, at most 16; replay and what-if see the recorded value"},
	{Kind: CandidateMethod, Lua: "has_tag", Type: "boolean", Params: "tag", MinArgs: 1, MaxArgs: 1, Args: []Arg{String}, Doc: "whether the candidate carries `tag`: Lua `c:has_tag(\"gpu\")`; in expr, the helper `hasTag(c, \"gpu\")`"},

	{Kind: Helper, Lua: "least_loaded", Expr: "leastLoaded", Type: "worker id or nil", Params: "list [, tag]", MinArgs: 1, MaxArgs: 2, Args: []Arg{List, String}, Doc: "the id with the lowest `(in_flight + buffer_depth) / max_in_flight`; ties go to the earliest; with `tag`, among the candidates carrying it"},
	{Kind: Helper, Lua: "with_tag", Expr: "withTag", Type: "list of candidates", Params: "list, tag", MinArgs: 2, MaxArgs: 2, Args: []Arg{List, String}, Doc: "the candidates carrying `tag`, in order"},
	{Kind: Helper, Lua: "rendezvous", Expr: "rendezvous", Type: "worker id or nil", Params: "list, key", MinArgs: 2, MaxArgs: 2, Args: []Arg{List, String}, Doc: "the id with the highest rendezvous hash for `key`: the same key keeps the same worker while it is a candidate, and only its keys move when it leaves"},
	{Kind: Helper, Lua: "p2c", Expr: "p2c", Type: "worker id or nil", Params: "list", MinArgs: 1, MaxArgs: 1, Args: []Arg{List}, Doc: "power of two choices: two random candidates, the less loaded wins"},
	{Kind: Helper, Lua: "p2c_ewma", Expr: "p2cEwma", Type: "worker id or nil", Params: "list", MinArgs: 1, MaxArgs: 1, Args: []Arg{List}, Doc: "power of two choices by Finagle's cost: two random candidates (drawn as `p2c` draws them), the lower `latency_peak_ewma × (in_flight + 1)` wins; a candidate with no figure yet (0) counts at the mean `latency_peak_ewma` of the candidates that have one (at 1 if none has, which leaves fewest in flight); ties go to the less loaded, then the first drawn"},
	{Kind: Helper, Lua: "least_latency", Expr: "leastLatency", Type: "worker id or nil", Params: "list", MinArgs: 1, MaxArgs: 1, Args: []Arg{List}, Doc: "the id with the lowest `latency_ewma`; a candidate with no figure yet (0) counts at the mean `latency_ewma` of the candidates that have one; ties go to the less loaded, then the earliest"},
	{Kind: Helper, Lua: "healthy", Expr: "healthy", Type: "list of candidates", Params: "list, max_error_rate", MinArgs: 2, MaxArgs: 2, Args: []Arg{List, Number}, Doc: "the candidates whose `error_rate` is at most `max_error_rate` (a number), in order; it may be empty: fall back on `list` then, if a failing worker is better than none"},
	{Kind: Helper, Lua: "random", Expr: "random", Type: "number", Doc: "a number in [0, 1) (in Lua, `math.random` draws from the same source)"},
	{Kind: Helper, Lua: "has_tag", Expr: "hasTag", Type: "boolean", Params: "c, tag", MinArgs: 2, MaxArgs: 2, Args: []Arg{Candidate, String}, Doc: "whether candidate `c` carries `tag`"},
	{Kind: Helper, Lua: "json_decode", Type: "any", Params: "s", MinArgs: 1, MaxArgs: 1, Args: []Arg{String}, Doc: "the JSON value: an object as a table with string keys, walked by `pairs` in document order; an array as a list from 1; numbers as floating point; `null` as `nil` (a hole, in a list); a key given twice keeps its last value. expr has its builtin `fromJSON(s)`: an object as a map, an array as a list from 0"},
	// concat is what the rewritten chunk calls for `..`; it stays readable
	// as dispatch.concat, as it always was, but is no helper to document.
	{Kind: Helper, Lua: "concat", Type: "string", Params: "a, b, …", MinArgs: 2, MaxArgs: 2, Variadic: true, Hidden: true, Doc: "what `..` calls, with every operand of a chain of `..`"},
}

// All returns every row, in the reference's order.
func All() []Name { return slices.Clone(table) }

// Of returns the rows of kind k, in the reference's order.
func Of(k Kind) []Name {
	var out []Name
	for _, n := range table {
		if n.Kind == k {
			out = append(out, n)
		}
	}
	return out
}

// Lua returns the Lua names of kind k, sorted; hidden ones only when
// hidden is true.
func Lua(k Kind, hidden bool) []string {
	return sorted(k, hidden, func(n Name) string { return n.Lua })
}

// Expr returns the expr names of kind k, in the reference's order.
func Expr(k Kind) []string {
	var out []string
	for _, n := range Of(k) {
		if n.Expr != "" {
			out = append(out, n.Expr)
		}
	}
	return out
}

func sorted(k Kind, hidden bool, name func(Name) string) []string {
	var out []string
	for _, n := range Of(k) {
		if name(n) != "" && (hidden || !n.Hidden) {
			out = append(out, name(n))
		}
	}
	sort.Strings(out)
	return out
}

// LookupLua returns the row of kind k whose Lua name is name.
func LookupLua(k Kind, name string) (Name, bool) {
	for _, n := range table {
		if n.Kind == k && n.Lua == name {
			return n, true
		}
	}
	return Name{}, false
}

// LookupExpr returns the row of kind k whose expr name is name.
func LookupExpr(k Kind, name string) (Name, bool) {
	for _, n := range table {
		if n.Kind == k && n.Expr == name {
			return n, true
		}
	}
	return Name{}, false
}

// Accepts reports whether a call of n may pass k arguments.
func (n Name) Accepts(k int) bool {
	return k >= n.MinArgs && (n.Variadic || k <= n.MaxArgs)
}

// Takes says how many arguments n takes, with its parameters: "takes 1 or
// 2 arguments (list [, tag])", "takes no arguments".
func (n Name) Takes() string {
	var count string
	switch {
	case n.Variadic:
		count = fmt.Sprintf("%d or more arguments", n.MinArgs)
	case n.MinArgs == n.MaxArgs && n.MinArgs == 0:
		return "takes no arguments"
	case n.MinArgs == n.MaxArgs && n.MinArgs == 1:
		count = "1 argument"
	case n.MinArgs == n.MaxArgs:
		count = fmt.Sprintf("%d arguments", n.MinArgs)
	case n.MaxArgs == n.MinArgs+1:
		count = fmt.Sprintf("%d or %d arguments", n.MinArgs, n.MaxArgs)
	default:
		count = fmt.Sprintf("%d to %d arguments", n.MinArgs, n.MaxArgs)
	}
	return fmt.Sprintf("takes %s (%s)", count, n.Params)
}
