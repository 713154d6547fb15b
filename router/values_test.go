package router_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// address matches what a memory address looks like in Go's and
// gopher-lua's renderings (%p, %v of a pointer, "table: 0x…").
var address = regexp.MustCompile(`0x[0-9a-f]{6,}`)

// TestValuesAreRenderedAsScriptsWriteThem checks that what a script raises,
// returns or formats shows up in messages and strings the way the script
// would write it: no memory address (which would differ from one run to
// the next, and break a golden journal that records it), no Go type.
func TestValuesAreRenderedAsScriptsWriteThem(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		lang      router.Lang
		want      string // in the error
	}{
		// What Lua's error is given, when it is not a string.
		{"lua error of an empty table", "function route()\n  local t = {}\n  error(t)\nend", router.Lua,
			"test.lua:3: error object is not a string: {} (lua "}, // the line that raised it
		{"lua error of a table", `function route() error({"overloaded", code = 503, retry = {after = 2, ok = true}}) end`, router.Lua,
			`test.lua:1: error object is not a string: {"overloaded", code = 503, retry = {after = 2, ok = true}} (lua `},
		{"lua error of odd keys", `function route() error({[1.5] = "a", ["two words"] = 2, [true] = 3}) end`, router.Lua,
			`error object is not a string: {[1.5] = "a", ["two words"] = 2, [true] = 3} (lua `},
		{"lua error of a table with a metatable", `function route() error(setmetatable({x = 1}, {__tostring = function() return "x" end})) end`, router.Lua,
			`error object is not a string: {x = 1} (lua `},
		{"lua error of a long table", `function route() local t = {} for i = 1, 40 do t[i] = i end error(t) end`, router.Lua,
			`error object is not a string: {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, … (24 more)} (lua `},
		{"lua error of a cycle", `function route() local t = {} t.self = t error(t) end`, router.Lua,
			`error object is not a string: {self = {self = {self = {…}}}} (lua `},
		{"lua error of a function", `function route() error(function() end) end`, router.Lua,
			"error object is not a string: function (lua "},
		{"lua error of the request", `function route(r) error(r) end`, router.Lua,
			"error object is not a string: request (lua "},
		{"lua error of the candidates", `function route(r, c) error(c) end`, router.Lua,
			"error object is not a string: candidates (lua "},
		{"lua error of a candidate", `function route(r, c) error(c[2]) end`, router.Lua,
			`error object is not a string: candidate "w2" (lua `},
		{"lua error of a with_tag list", `function route(r, c) error(dispatch.with_tag(c, "eu")) end`, router.Lua,
			`error object is not a string: {candidate "w1"} (lua `},
		{"lua error of a table of candidates", `function route(r, c) error({best = c[1]}) end`, router.Lua,
			`error object is not a string: {best = candidate "w1"} (lua `},
		{"lua error of excluded", `function route(r, c, e) error(e) end`, router.Lua,
			"error object is not a string: excluded (lua "},
		{"lua error of a library", `function route() error(dispatch) end`, router.Lua,
			"error object is not a string: dispatch (lua "},
		{"lua top-level error of a table", `error({code = 1})`, router.Lua,
			"test.lua:1: error object is not a string: {code = 1}"},
		// gopher-lua's own messages name a table key by its address.
		{"lua table key in a message", "function route()\n  local t = nil\n  return t[{}]\nend", router.Lua,
			"test.lua:3: attempt to index a non-table object(nil) with key 'table' (lua "},
		// What a Lua script formats or catches itself.
		{"lua string.format of a table", `function route() return string.format("%s %q %5.1f", {}, function() end, 1) end`, router.Lua,
			`returned "table \"function\"   1.0", which is not a candidate`},
		{"lua pcall message", `function route() local ok, m = pcall(function() local t = nil return t[{}] end) return m end`, router.Lua,
			`with key 'table'", which is not a candidate`},
		{"lua xpcall message", `function route() local ok, m = xpcall(function() local t = nil return t[{}] end, function(m) return "h: " .. m end) return m end`, router.Lua,
			`returned "h: `},
		{"lua xpcall handler sees the table", `function route() local ok, m = xpcall(function() error({1}) end, function(m) return type(m) end) return m end`, router.Lua,
			`returned "table", which is not a candidate`},

		// What an expr script returns, when it is neither an id nor a
		// candidate: [X, ""][0] is of any type, which the compile-time check
		// of results lets through, so that the value is rendered at run time.
		{"expr candidates", `[candidates, ""][0]`, router.Expr, `returned a list [candidate "w1", candidate "w2"];`},
		{"expr empty list", `[filter(candidates, .in_flight > 100), ""][0]`, router.Expr, "returned a list [];"},
		{"expr map", `[{"b": 1, "a": [true, nil, 1.5, "x"]}, ""][0]`, router.Expr, `returned a map {"a": [true, nil, 1.5, "x"], "b": 1};`},
		{"expr request", `[request, ""][0]`, router.Expr, "returned the request;"},
		{"expr float", `[1.5, ""][0]`, router.Expr, "returned float 1.5;"},
		{"expr bool", `[true, ""][0]`, router.Expr, "returned bool true;"},
		{"expr helper as a value", `leastLoaded`, router.Expr,
			"test.expr:1:1: leastLoaded is a helper and not a value: call it, as in leastLoaded(candidates)"},
		{"expr helper bound to a name", `let f = leastLoaded; f(candidates)`, router.Expr, "test.expr:1:9: leastLoaded is a helper and not a value"},
		{"expr long list", `[1..40, ""][0]`, router.Expr, "returned a list [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, … (24 more)];"},
		{"expr tags", `[candidates[0].tags, ""][0]`, router.Expr, `returned a list ["eu"];`},
		// What an expr script makes into a string itself.
		{"expr helper in a list", `string([1, hasTag])`, router.Expr, "test.expr:1:12: hasTag is a helper and not a value"},
		{"expr string of a map", `string({"b": [1, "x"], "a": request.attempt})`, router.Expr, `returned "map[a:1 b:[1 x]]", which`},
		{"expr string of candidates", `string(candidates)`, router.Expr,
			`returned "[{id: \"w1\", in_flight: 0, max_in_flight: 1, buffer_depth: 0, available: 1, tags: [\"eu\"], labels: {}, latency_ewma: 0, latency_peak_ewma: 0, error_rate: 0, exits: 0} {id: \"w2\", `},
		{"expr toJSON of a candidate", `toJSON(candidates[0])`, router.Expr, `\"in_flight\": 0`},
		// Maps have no order in Go; what a script sees of one is sorted.
		{"expr keys", `[keys({"b": 1, "a": 2, "d": 3, "c": 4}), ""][0]`, router.Expr, `returned a list ["a", "b", "c", "d"];`},
		{"expr values", `[values({"b": 1, "a": 2, "d": 3, "c": 4}), ""][0]`, router.Expr, `returned a list [2, 1, 4, 3];`},
		{"expr toPairs", `[toPairs({"b": 1, "a": 2}), ""][0]`, router.Expr, `returned a list [["a", 2], ["b", 1]];`},
		// Go's type names, in expr's runtime messages.
		{"expr type in a message", `string(int(fromJSON("{}")))`, router.Expr, "invalid operation: int(a map) (expr "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var first string
			for run := range 2 { // two compilers, two interpreters: the same message
				p, err := router.NewCompiler(router.Limits{}).Compile(tc.lang, "test."+string(tc.lang), []byte(tc.src))
				if err == nil {
					in := selection(t, worker("w1", 0, 1, 0, "eu"), worker("w2", 0, 1, 0))
					_, err = router.NewScript(p, "test."+string(tc.lang), time.Second).Select(context.Background(), in)
				}
				if err == nil {
					t.Fatal("no error")
				}
				msg := err.Error()
				if a := address.FindString(msg); a != "" {
					t.Errorf("the error shows the address %s: %s", a, msg)
				}
				if !strings.Contains(msg, tc.want) {
					t.Errorf("error %q\nlacks %q", msg, tc.want)
				}
				if run == 0 {
					first = msg
				} else if msg != first {
					t.Errorf("the message differs from one run to the next:\n%s\n%s", first, msg)
				}
			}
		})
	}
}

// FuzzScriptMessages runs arbitrary Lua and expr scripts: whatever they do,
// no message (compile error, runtime error, invalid decision) shows a
// memory address, and two runs in separate interpreters say the same.
func FuzzScriptMessages(f *testing.F) {
	for _, s := range []string{
		`function route() error({}) end`,
		`function route(r, c, e) error({r, c, e, c[1], dispatch, string, function() end}) end`,
		`function route() local t = nil return t[{}] end`,
		`function route() return string.format("%s|%q", {}, print) end`,
		`function route() return select(2, pcall(error, setmetatable({}, {}))) end`,
		`function route(r, c) return dispatch.with_tag(c, "eu") end`,
		`error(function() end)`,
		`candidates`,
		`[candidates, request, {"a": candidates[0]}]`,
		`string([candidates, request, {"a": candidates[0]}])`,
		`fromPairs([[1, candidates[0]], [request, 2]])`,
		`toPairs({"a": 1, "b": candidates})`,
		`fromJSON(request.input)`,
		`{c[1], {e}, r, dispatch.with_tag(c, "eu"), math, 1.5, "s", true}`,
		`select(2, pcall(function() return {} .. 1 end))`,
	} {
		f.Add(s)
	}
	in := engine.Selection{WorkflowID: "wf-1", Channel: mustChannel(f), ConversationID: "c1", Attempt: 1,
		Request: engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "send", TaskQueue: "email",
			Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"region":"eu","n":[1,2]}`)}},
		Candidates: []engine.Worker{worker("w1", 0, 1, 0, "eu"), worker("w2", 2, 4, 1)},
		Excluded:   []string{"w0"},
	}
	f.Fuzz(func(t *testing.T, text string) {
		// The text as a script, and as a Lua expression that is raised or
		// returned: most of what the fuzzer writes is no whole script.
		for _, sc := range []struct {
			lang router.Lang
			src  string
		}{
			{router.Lua, text},
			{router.Lua, "function route(r, c, e) error(" + text + ") end"},
			{router.Lua, "function route(r, c, e) return " + text + " end"},
			{router.Expr, text},
		} {
			lang, src := sc.lang, sc.src
			var msgs [2]string
			timedOut := false
			for run := range msgs {
				p, err := router.NewCompiler(router.Limits{}).Compile(lang, "f", []byte(src))
				if err == nil {
					_, err = router.NewScript(p, "f", 50*time.Millisecond).Select(context.Background(), in)
				}
				if err == nil {
					continue
				}
				timedOut = timedOut || errors.Is(err, router.ErrScriptTimeout)
				msgs[run] = err.Error()
				if a := address.FindString(msgs[run]); a != "" && !mayWriteHex.MatchString(src) {
					t.Fatalf("%s: the message shows the address %s:\n%s", lang, a, msgs[run])
				}
			}
			if !timedOut && msgs[0] != msgs[1] {
				t.Fatalf("%s: the message differs from one run to the next:\n%s\n%s", lang, msgs[0], msgs[1])
			}
		}
	})
}

// mayWriteHex matches scripts that may write text looking like an address
// themselves: a hex literal, a hex format directive, a decimal escape (as
// in "\48\120").
var mayWriteHex = regexp.MustCompile(`0[xX]|%[-+ #0-9.]*[xXaA]|\\[0-9]`)

func mustChannel(f *testing.F) engine.ChannelName {
	ch, err := engine.DispatchChannel("prod", "email")
	if err != nil {
		f.Fatal(err)
	}
	return ch
}
