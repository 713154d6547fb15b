package router_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/router"
)

// TestLuaNamesAreCheckedWhenCompiled: a name that would be nil when the
// script runs (a misspelt local, an unknown helper) is a compile error with
// its line and, when one is close, a suggestion; everything a script may
// legitimately read compiles.
func TestLuaNamesAreCheckedWhenCompiled(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"misspelt parameter", "function route(r, cands)\n  return dispatch.least_loaded(cand)\nend",
			"test.lua:2:32: unknown name cand (did you mean cands?)"},
		{"unknown helper", "function route(r, c)\n  return dispatch.leastloaded(c)\nend",
			"test.lua:2:19: dispatch has no leastloaded (did you mean least_loaded?) (it has has_tag, healthy, json_decode, least_latency, least_loaded, p2c, p2c_ewma, random, rendezvous, with_tag)"},
		{"unknown string function", "function route(r, c)\n  return string.startswith(c[1].id, 'w') and c[1].id\nend",
			"test.lua:2:17: string has no startswith"},
		{"a local out of its scope", "function route(r, c)\n  do local pick = c[1] end\n  return pick.id\nend",
			"test.lua:3:10: unknown name pick: not a local in scope"},
		{"a for variable after the loop", "function route(r, c)\n  for i = 1, #c do end\n  return c[i].id\nend",
			"test.lua:3:12: unknown name i"},
		{"in a nested function", "local function best(c)\n  return dispatch.least_loaded(c)\nend\nfunction route(r, c)\n  return bset(c)\nend",
			"test.lua:5:10: unknown name bset (did you mean best?)"},
		{"a library function the sandbox removes", "function route(r, c)\n  math.randomseed(1)\nend",
			"test.lua:2:8: math.randomseed is not available to routing scripts (the sandbox removes it)"},
		{"a name the sandbox removes", "function route(r, c)\n  print(c[1].id)\nend",
			"test.lua:2:3: print is not available to routing scripts (the sandbox removes it): a script has no output"},
		{"a misspelt request field", "function route(r, c)\n  if r.regoin == 'eu' then return c[1].id end\nend",
			"test.lua:2:8: the request has no field regoin (it has activity_type,"},
		{"a misspelt candidate field", "function route(r, c)\n  return c[1].inflight == 0 and c[1].id\nend",
			"test.lua:2:15: a candidate has no field inflight (did you mean in_flight?)"},
		{"a misspelt field of a loop's candidate", "function route(r, cands)\n  for _, w in ipairs(cands) do\n    if w.max_inflight > 0 then return w.id end\n  end\nend",
			"test.lua:3:10: a candidate has no field max_inflight (did you mean max_in_flight?)"},
		{"a candidate method", "function route(r, c)\n  return c[1]:hasTag('eu') and c[1].id\nend",
			"test.lua:2:15: a candidate's only method is has_tag, not hasTag"},
		{"a helper called with a colon", "function route(r, c)\n  return dispatch:least_loaded(c)\nend",
			"test.lua:2:10: dispatch:least_loaded passes the dispatch table as the first argument: call dispatch.least_loaded(...)"},
		{"an unknown helper called with a colon", "function route(r, c)\n  return dispatch:leastloaded(c)\nend",
			"test.lua:2:19: dispatch has no leastloaded"},
		{"a write to a library", "function string.trim(s) return s end\nfunction route(r, c) return c[1].id end",
			"test.lua:1:10: the string table is read-only: keep your own functions in a local table"},
		{"a write to the request", "function route(r, c)\n  r.attempt = 2\n  return c[1].id\nend",
			"test.lua:2:13: the request is read-only"},
		{"a write to a candidate", "function route(r, c)\n  c[1].in_flight = 0\n  return c[1].id\nend",
			"test.lua:2:18: the candidates are read-only"},
		{"a probe still checks what it reads from", "function route(r, c)\n  if dispatch.leastloaded.x then return nil end\nend",
			"test.lua:2:15: dispatch has no leastloaded"},
		{"a misspelt field in a condition", "function route(r, c)\n  if c[1].inflight == nil then return nil end\nend",
			"test.lua:2:11: a candidate has no field inflight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := router.NewCompiler(router.Limits{}).Compile(router.Lua, "test.lua", []byte(tc.src))
			// want is "test.lua:LINE:COL: message"
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("compile: %v\nwant %q", err, tc.want)
			}
		})
	}
	for _, src := range []string{
		// globals assigned anywhere, read anywhere (even before the assignment runs)
		"function route(r, c) return pick(c) end\nfunction pick(c) return c[1].id end",
		"function route(r, c) seen = (seen or 0) + 1 return c[1].id end",
		// locals, upvalues, recursion, loops, repeat-until seeing the body's locals
		"local n = 1\nlocal function f(k) if k > 0 then return f(k - 1) end return n end\nfunction route(r, c) return c[f(2)].id end",
		"function route(r, c) for _, w in ipairs(c) do if w:has_tag('eu') then return w.id end end end",
		"function route(r, c) local i = 0 repeat i = i + 1 local w = c[i] until w == nil or w.in_flight == 0 return c[1].id end",
		// methods, self, varargs, tables of functions, the libraries
		"local M = {}\nfunction M:pick(c) return self.first(c) end\nM.first = function(c) return c[1].id end\nfunction route(r, c, ...) return M:pick(c) end",
		"function route(r, c) return string.format('%s', c[1].id):lower() .. table.concat({}) .. math.floor(1) and c[1].id end",
		// a local that shadows a library: its members are not checked
		"function route(r, c) local string = {startswith = function() return true end} return string.startswith() and c[1].id end",
		"function route(r, c) local ok = pcall(error, 'x') assert(true) return select('#', 1) and tostring(1) and type(c) and c[1].id end",
		// globals assigned in functions passed around, in tables, in conditions
		"function route(r, c) pcall(function() picked = c[1].id end) return picked end",
		"local M = {init = function() ready = 1 end}\nfunction route(r, c) M.init() return c[ready].id end",
		"function route(r, c) table.sort({3, 1}, function(a, b) last = a return a < b end) return last and c[1].id end",
		"function route(r, c) if pcall(function() g = 1 end) then return c[g].id end end",
		// fields that exist; a parameter given another value is not checked
		"function route(r, c) if r.input_content_type and r.attempt > 1 then return nil end for _, w in ipairs(c) do if w.available > 0 and w:has_tag('eu') and #w.tags > 0 then return w.id end end end",
		"function route(r, c) r = {regoin = 'eu'} return r.regoin and c[1].id end",
		"function route(r, c) local w = c[1] w = {inflight = 0} return w.inflight == 0 and c[1].id end",
		// a local table of one's own, methods and all
		"local util = {}\nfunction util.pick(c) return c[1].id end\nfunction util:name() return self.x end\nfunction route(r, c) return util.pick(c) end",
		"function route(r, c) return ('W1'):lower() == c[1].id and c[1].id or string.upper(c[1].id):lower() end",
		// route called or wrapped by the script itself: its parameters may be anything
		"function route(req, c) if req.region == 'eu' then return c[2].id end return c[1].id end\nlocal base = route\nfunction route(r, c) return base({region = 'eu'}, c) end",
		"function route(r, c) if r.fallback then return c[1].id end return route({fallback = true}, c) end",
		"function route(r, c, c) return c end", // the last of two same-named parameters wins in Lua
		// arg in a vararg function (gopher-lua's Lua 5.0 compatibility)
		"function route(...) local c = arg[2] return c[arg.n - 1].id end",
		// testing whether a name exists is the point, not a mistake
		"local unpack = table.unpack or unpack\nfunction route(r, c) if math.type then return nil end if DEBUG then return nil end if not string.startswith and select_worker == nil then return c[1].id end end",
		"function route(r, c) return dispatch:random() and c[1].id end", // random ignores its arguments
	} {
		if _, err := router.NewCompiler(router.Limits{}).Compile(router.Lua, "ok.lua", []byte(src)); err != nil {
			t.Errorf("a valid script was refused: %v\n%s", err, src)
		}
	}
}

// FuzzCompileLua feeds arbitrary sources to the compiler: it must not
// panic, and every refusal is a located ScriptError.
func FuzzCompileLua(f *testing.F) {
	for _, s := range []string{
		"function route(r, c) return dispatch.least_loaded(c) end",
		"local M = {}\nfunction M:pick(c) return self end\nfunction route(r, c, ...) for i = 1, #c do end repeat local x = 1 until x end",
		"function route(r, c) return dispatch.leastloaded(cand) end",
		"function route(r, c)\n  return c[1.id\nend",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		_, err := router.NewCompiler(router.Limits{}).Compile(router.Lua, "f.lua", []byte(src))
		var se *router.ScriptError
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("%T %v", err, err)
		}
	})
}

// TestLuaNameProblemsAllAtOnce: every problem the name check finds is in
// the one ScriptError: the first in its fields, the others in More, each
// with its own place, and Error renders them all.
func TestLuaNameProblemsAllAtOnce(t *testing.T) {
	src := "function route(r, cands)\n  local x = r.atempt\n  return dispatch.least_loaded(cand)\nend"
	_, err := router.NewCompiler(router.Limits{}).Compile(router.Lua, "test.lua", []byte(src))
	var se *router.ScriptError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a ScriptError", err, err)
	}
	if se.Short() != "test.lua:2:15: the request has no field atempt (did you mean attempt?) (it has activity_type, attempt, channel, conversation_id, input, input_content_type, namespace, task_queue, workflow_id)" {
		t.Errorf("first problem %q", se.Short())
	}
	if len(se.More) != 1 || se.More[0].Short() != "test.lua:3:32: unknown name cand (did you mean cands?): not a local in scope, a global the script assigns, or one the sandbox has" {
		t.Fatalf("More = %v, want the unknown name cand", se.More)
	}
	want := se.Short() + se.Excerpt(true) + "\n" + se.More[0].Short() + "\n\t  return dispatch.least_loaded(cand)\n\t                               ^"
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
}
