package exprrt

import (
	"errors"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/router/internal/call"
)

// TestMessagesNameNoGoTypes: expr's messages name the environment's Go
// types by their package-qualified names; a script's author sees its own
// words instead. The rewording depends on this package's name, which these
// cases pin.
func TestMessagesNameNoGoTypes(t *testing.T) {
	limits := Limits{MaxNodes: 10_000, MemoryBudget: 1_000_000, PoolSize: 1}
	for _, tc := range []struct{ src, want string }{
		{`candidates[0].inflight`, "a candidate has no field inflight (did you mean in_flight?) (it has id, in_flight, max_in_flight, buffer_depth, available, tags, labels, latency_ewma, latency_peak_ewma, error_rate, exits)"},
		{`request.regoin`, "the request has no field regoin (it has namespace, task_queue, channel, workflow_id, conversation_id, attempt, activity_type, input_content_type, input)"},
		{`candidates[0] in candidates`, `a candidate cannot be looked for in a list with "in"`},
		{`candidates + 1`, "a list of candidates"},
	} {
		_, err := Compile([]byte(tc.src), limits)
		var ce *call.Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: %v, want a *call.Error", tc.src, err)
			continue
		}
		if !strings.Contains(ce.Message, tc.want) || strings.Contains(ce.Message, "exprrt.") {
			t.Errorf("%s: %q, want it to say %q in the script's words", tc.src, ce.Message, tc.want)
		}
	}
}

// TestSuggestions: an unknown name or field in an expr script gets the same
// "did you mean" as in Lua, from the table of names.
func TestSuggestions(t *testing.T) {
	limits := Limits{MaxNodes: 10_000, MemoryBudget: 1_000_000, PoolSize: 1}
	for _, tc := range []struct{ src, want string }{
		{`filter(candidates, #.availble > 0)`, "a candidate has no field availble (did you mean available?) (it has id,"},
		{`candidates[0].availble`, "a candidate has no field availble (did you mean available?)"},
		{`leastLoad(candidates)`, "unknown name leastLoad (did you mean leastLoaded?)"},
		{`candidatess[0].id`, "unknown name candidatess (did you mean candidates?)"},
		{`leastLoaded(candidatess)`, "unknown name candidatess (did you mean candidates?)"},
		{`fromJSN(request.input).worker`, "unknown name fromJSN (did you mean fromJSON?)"},
		{`request.namespce`, "the request has no field namespce (did you mean namespace?) (it has namespace,"},
		{`nothingLikeIt(candidates)`, "unknown name nothingLikeIt"},
	} {
		_, err := Compile([]byte(tc.src), limits)
		var ce *call.Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: %v, want a *call.Error", tc.src, err)
			continue
		}
		if !strings.HasPrefix(ce.Message, tc.want) {
			t.Errorf("%s: %q, want it to start %q", tc.src, ce.Message, tc.want)
		}
		if strings.HasPrefix(tc.src, "nothing") && strings.Contains(ce.Message, "did you mean") {
			t.Errorf("%s: %q suggests a name nothing like it", tc.src, ce.Message)
		}
	}
}

// TestHelperArity: a helper called with a number of arguments the table of
// names does not allow is a compile error at the call.
func TestHelperArity(t *testing.T) {
	limits := Limits{MaxNodes: 10_000, MemoryBudget: 1_000_000, PoolSize: 1}
	for _, tc := range []struct {
		src, want string
		col       int
	}{
		{`leastLoaded(candidates)`, "", 0},
		{`leastLoaded(candidates, "gpu")`, "", 0},
		{`leastLoaded()`, "leastLoaded takes 1 or 2 arguments (list [, tag]), got 0", 1},
		{`withTag(candidates)`, "withTag takes 2 arguments (list, tag), got 1", 1},
		{`random() < 0.5 ? p2c(candidates, 1) : nil`, "p2c takes 1 argument (list), got 2", 18},
		{`random(1) < 0.5 ? "a" : "b"`, "random takes no arguments, got 1", 1},
		{`any(candidates, hasTag(#)) ? "a" : "b"`, "hasTag takes 2 arguments (c, tag), got 1", 17},
	} {
		_, err := Compile([]byte(tc.src), limits)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.src, err)
			}
			continue
		}
		var ce *call.Error
		if !errors.As(err, &ce) || ce.Message != tc.want || ce.Line != 1 || ce.Column != tc.col {
			t.Errorf("%s: %#v, want %q at 1:%d", tc.src, err, tc.want, tc.col)
		}
	}
}

// TestResultTypes: a script whose result can never be a worker id is a
// compile error at the expression that makes it; a string, a candidate,
// nil and a value the checker cannot type pass.
func TestResultTypes(t *testing.T) {
	limits := Limits{MaxNodes: 10_000, MemoryBudget: 1_000_000, PoolSize: 1}
	for _, tc := range []struct {
		src, want string
		col       int
	}{
		{`"w1"`, "", 0},
		{`candidates[0]`, "", 0},
		{`nil`, "", 0},
		{`leastLoaded(candidates)`, "", 0},
		{`fromJSON(request.input).worker`, "", 0},
		{`first(filter(candidates, .available > 0))`, "", 0},
		{`let c = candidates[0]; c.id`, "", 0},
		{`random() < 0.5 ? "a" : nil`, "", 0},
		{`request.input ?? "w1"`, "", 0},
		{`42`, "the script returns an integer, which is never a worker id", 1},
		{`1.5`, "the script returns a number,", 1},
		{`true`, "the script returns a boolean,", 1},
		{`candidates`, "the script returns a list of candidates,", 1},
		{`filter(candidates, .available > 0)`, "the script returns a list", 1},
		{`{"id": "w1"}`, "the script returns a map,", 1},
		{`request.attempt`, "the script returns an integer,", 9},
		{`candidates[0].tags`, "the script returns a list of strings,", 15},
		{`withTag(candidates, "gpu")`, "the script returns withTag's result, list of candidates,", 1},
		{`random()`, "the script returns random's result, number,", 1},
		{`random() < 0.5 ? "w1" : 7`, "the script returns an integer,", 25},
		{`let n = len(candidates); n`, "the script returns an integer,", 26},
	} {
		_, err := Compile([]byte(tc.src), limits)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.src, err)
			}
			continue
		}
		var ce *call.Error
		if !errors.As(err, &ce) || !strings.HasPrefix(ce.Message, tc.want) || ce.Line != 1 || ce.Column != tc.col {
			t.Errorf("%s: %#v, want %q at 1:%d", tc.src, err, tc.want, tc.col)
		}
	}
}

// TestHelperArgTypes: an argument of a helper whose type the checker
// knows, and the table of names does not allow, is a compile error at the
// argument.
func TestHelperArgTypes(t *testing.T) {
	limits := Limits{MaxNodes: 10_000, MemoryBudget: 1_000_000, PoolSize: 1}
	for _, tc := range []struct {
		src, want string
		col       int
	}{
		{`leastLoaded(filter(candidates, .available > 0), request.activity_type)`, "", 0},
		{`rendezvous(candidates, fromJSON(request.input).key)`, "", 0},
		{`any(candidates, hasTag(#, "gpu")) ? "a" : nil`, "", 0},
		{`leastLoaded(42)`, "leastLoaded: argument 1 must be a list of candidates, got an integer", 13},
		{`p2c("candidates")`, "p2c: argument 1 must be a list of candidates, got a string", 5},
		{`p2c(candidates[0])`, "p2c: argument 1 must be a list of candidates, got a candidate", 15},
		{`leastLoaded(excluded)`, "leastLoaded: argument 1 must be a list of candidates, got a list of strings", 13},
		{`leastLoaded(candidates, 1)`, "leastLoaded: argument 2 must be a string, got an integer", 25},
		{`rendezvous(candidates, request.attempt)`, "rendezvous: argument 2 must be a string, got an integer", 32},
		{`any(candidates, hasTag(#, true)) ? "a" : nil`, "hasTag: argument 2 must be a string, got a boolean", 27},
		{`any(candidates, hasTag(request, "gpu")) ? "a" : nil`, "hasTag: argument 1 must be a candidate, got the request", 24},
	} {
		_, err := Compile([]byte(tc.src), limits)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.src, err)
			}
			continue
		}
		var ce *call.Error
		if !errors.As(err, &ce) || ce.Message != tc.want || ce.Line != 1 || ce.Column != tc.col {
			t.Errorf("%s: %#v, want %q at 1:%d", tc.src, err, tc.want, tc.col)
		}
	}
}

// TestEveryProblem: the checks report every problem of a script, each at
// its place, not only the first expr's checker stops at.
func TestEveryProblem(t *testing.T) {
	limits := Limits{MaxNodes: 10_000, MemoryBudget: 1_000_000, PoolSize: 1}
	src := "let gpus = withTag(candidatess, \"gpu\");\nlen(gpus) > 0 ? leastLoad(gpus) : p2c(candidtes, 1)"
	_, err := Compile([]byte(src), limits)
	var ce *call.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%v, want a *call.Error", err)
	}
	got := []string{ce.Error()}
	for _, m := range ce.More {
		got = append(got, m.Error())
	}
	want := []string{
		"1:20: unknown name candidatess (did you mean candidates?)",
		"2:17: unknown name leastLoad (did you mean leastLoaded?)",
		"2:35: p2c takes 1 argument (list), got 2",
		"2:39: unknown name candidtes (did you mean candidates?)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestEveryUnknownField: every unknown field of the request, and of a
// candidate in a predicate over candidates, is reported, not only the
// first the checker meets; # over a list whose elements the check cannot
// know (fromJSON's), or of a nested predicate over strings, is left alone.
func TestEveryUnknownField(t *testing.T) {
	limits := Limits{MaxNodes: 10_000, MemoryBudget: 1_000_000, PoolSize: 1}
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{"let a = filter(candidates, #.availble > 0 && .inflight < 2);\nrequest.regoin == \"eu\" ? first(a) : first(sortBy(withTag(candidates, \"x\"), .bufferdepth))", []string{
			"1:30: a candidate has no field availble (did you mean available?) (it has id, in_flight, max_in_flight, buffer_depth, available, tags, labels, latency_ewma, latency_peak_ewma, error_rate, exits)",
			"1:47: a candidate has no field inflight (did you mean in_flight?) (it has id, in_flight, max_in_flight, buffer_depth, available, tags, labels, latency_ewma, latency_peak_ewma, error_rate, exits)",
			"2:9: the request has no field regoin (it has namespace, task_queue, channel, workflow_id, conversation_id, attempt, activity_type, input_content_type, input)",
			"2:77: a candidate has no field bufferdepth (did you mean buffer_depth?) (it has id, in_flight, max_in_flight, buffer_depth, available, tags, labels, latency_ewma, latency_peak_ewma, error_rate, exits)",
		}},
		{"let items = fromJSON(request.input).items;\nlen(filter(items, #.weight > 1)) > 0 ? first(candidates) : nil", nil},
		{"first(filter(candidates, any(.tags, # == \"gpu\")))", nil},
	} {
		_, err := Compile([]byte(tc.src), limits)
		var got []string
		var ce *call.Error
		if errors.As(err, &ce) {
			got = append(got, ce.Error())
			for _, m := range ce.More {
				got = append(got, m.Error())
			}
		} else if err != nil {
			t.Fatalf("%s: %v, want a *call.Error", tc.src, err)
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s:\ngot\n%s\nwant\n%s", tc.src, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}
