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
		{`candidates[0].inflight`, "a candidate has no field inflight (did you mean in_flight?) (it has id, in_flight, max_in_flight, buffer_depth, available, tags)"},
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
