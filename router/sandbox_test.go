package router_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// TestLuaSandboxHasNoEscape proves each forbidden capability is refused
// when the script is compiled: naming it is an unknown name. (That the
// sandbox lacks them at run time as well is TestLuaSandboxLacksAtRunTime.)
func TestLuaSandboxHasNoEscape(t *testing.T) {
	for _, name := range forbiddenLua {
		t.Run(name, func(t *testing.T) {
			src := `function route(r, c)
  local ok, v = pcall(function() return ` + name + ` end)
  if ok and v == nil then return c[1].id end
  return "present"
end`
			_, err := router.NewCompiler(router.Limits{}).Compile(router.Lua, "test.lua", []byte(src))
			lib, _, isMember := strings.Cut(name, ".")
			want := name + " is not available to routing scripts (the sandbox removes it)"
			col := strings.Index(src[strings.Index(src, "\n")+1:], "return "+name) + len("return ") + 1
			if isMember {
				col += len(lib) + 1 // the caret goes under the member
			}
			at := fmt.Sprintf("test.lua:2:%d: ", col)
			if err == nil || !strings.HasPrefix(err.Error(), at+want) {
				t.Errorf("compile: %v, want %q", err, at+want)
			}
		})
	}
}

// forbiddenLua are the standard names a routing script must not reach.
var forbiddenLua = []string{
	"dofile", "loadfile", "load", "loadstring", "require", "module",
	"collectgarbage", "getfenv", "setfenv", "print", "rawset", "newproxy",
	"io", "os", "debug", "package", "channel", "coroutine", "_G",
	"_printregs", "gcinfo", "string.dump", "math.randomseed", "rawget", "next",
}

// TestLuaCallsDoNotLeak runs scripts that try to carry state from one call
// to the next; every call must decide as if it were the first.
func TestLuaCallsDoNotLeak(t *testing.T) {
	cands := []engine.Worker{worker("w1", 0, 1, 0), worker("w2", 0, 1, 0), worker("w3", 0, 1, 0)}
	for _, tc := range []struct{ name, src string }{
		{"global", `function route(r, c) seen = (seen or 0) + 1 return c[seen].id end`},
		{"top-level local", `local n = 0 function route(r, c) n = n + 1 return c[n].id end`},
		{"top-level table", `local seen = {} function route(r, c) seen[#seen + 1] = true return c[#seen].id end`},
		{"closure counter", `local function counter() local n = 0 return function() n = n + 1 return n end end
local next_id = counter()
function route(r, c) return c[next_id()].id end`},
		{"library override", `function route(r, c)
  local ok = pcall(function() string.upper = function() return "w3" end end)
  return c[1].id
end`},
		{"string metatable", `function route(r, c)
  local mt = getmetatable("")
  if type(mt) == "table" then mt.__index = { upper = function() return "w3" end } end
  local ok = pcall(setmetatable, "", {})
  if ("w1"):upper() == "W1" then return c[1].id end
  return "leaked"
end`},
		{"writes to the candidates", `function route(r, c)
  pcall(function() c[1] = nil end)
  pcall(function() c[99] = "w3" end)
  pcall(function() c.extra = "w3" end)
  pcall(function() c[1].id = "w3" end)
  pcall(function() c[1].in_flight = 99 end)
  pcall(function() c[1].has_tag = function() return true end end)
  pcall(function() table.insert(c[1].tags, "gpu") end)
  pcall(function() table.sort(c) end)
  pcall(function() table.remove(c) end)
  if c[99] ~= nil or c.extra ~= nil or c[1].in_flight ~= 0 or c[1]:has_tag("gpu") or #c[1].tags ~= 0
    or c[1].tags[1] ~= nil or #c ~= 3 then
    return "leaked"
  end
  return c[1].id
end`},
		{"globals and upvalues in a pure-looking chunk", `local limit = 1
function pick(c) return c[limit].id end
function route(r, c) return pick(c) end`},
		{"__newindex onto a candidate", `function route(r, c)
  local p = setmetatable({}, {__newindex = c[1]})
  pcall(function() p.has_tag = function() return true end end)
  pcall(function() p.in_flight = 99 end)
  if c[1]:has_tag("gpu") or c[1].in_flight ~= 0 then return "leaked" end
  return c[1].id
end`},
		{"goto around a rebinding", `function route(r, c)
  local t = c[1]
  if r.attempt > 0 then goto skip end
  t = {}
  ::skip::
  pcall(function() t.in_flight = 99 end)
  if c[1].in_flight ~= 0 then return "leaked" end
  return c[1].id
end`},
		{"tostring of a table", `function route(r, c)
  if tostring({}) ~= "table" or tostring(type) ~= "function" then return "address" end
  return c[1].id
end`},
		{"json object order", `function route(r, c)
  local first
  for k in pairs(dispatch.json_decode('{"w1":1,"w2":2,"w3":3,"b":4,"a":5}')) do first = first or k end
  return first
end`},
		{"rawequal on proxies", `function route(r, c)
  local ok = pcall(function() table.insert = nil end)
  return c[1].id
end`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compileUnchecked(t, tc.src) // some of these the compile-time check would refuse
			for i := range 20 {
				d, err := s.Select(context.Background(), selection(t, cands...))
				if err != nil || d.WorkerID != "w1" {
					t.Fatalf("call %d: chose %q, %v; want w1 every time", i+1, d.WorkerID, err)
				}
			}
		})
	}
	// A call that fails leaves nothing behind either: its state is dropped.
	s := compileUnchecked(t, `function route(r, c)
  if r.workflow_id == "break" then string.upper = nil end
  return string.upper("w1"):lower()
end`)
	in := selection(t, cands...)
	in.WorkflowID = "break"
	if _, err := s.Select(context.Background(), in); err == nil || !strings.Contains(err.Error(), "read-only string table") {
		t.Fatalf("overriding string.upper: err = %v", err)
	}
	if d, err := s.Select(context.Background(), selection(t, cands...)); err != nil || d.WorkerID != "w1" {
		t.Fatalf("after a failed call: %v, %v", d, err)
	}
}

// TestLuaRunawayIsStopped runs scripts that never return under a 20 ms
// deadline: each must be stopped by that deadline (ErrScriptTimeout, not
// some other limit it would reach later) and soon after it passes. The
// bound, 100 times the deadline, is generous so that a loaded machine or
// the race detector cannot make it flaky; a deadline check made rare
// enough to matter, or gone, runs far past it.
func TestLuaRunawayIsStopped(t *testing.T) {
	for _, tc := range []struct{ name, src string }{
		{"loop", `function route() while true do end end`},
		{"pcall loop", `function route() while true do pcall(function() while true do end end) end end`},
		{"recursion in pcall", `local function f() return pcall(f) end function route() while true do f() end end`},
		{"gsub per match", `function route()
  local s = string.rep("a", 100000)
  while true do s:gsub("a", function(x) return x end) end
end`},
		// Each match is one call into Go that would backtrack until the
		// matcher's step budget ends it (tenths of a second): only the
		// matcher's own check of the deadline stops the first one in time.
		{"backtracking matches in pcall", `function route()
  local s = string.rep("a", 300)
  while true do pcall(string.match, s, ".-.-.-b") end
end`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := router.NewCompiler(router.Limits{}).Compile(router.Lua, "spin.lua", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			const deadline = 20 * time.Millisecond
			s := router.NewScript(p, "spin.lua", deadline)
			start := time.Now()
			_, err = s.Select(context.Background(), selection(t, worker("w1", 0, 1, 0)))
			took := time.Since(start)
			if !errors.Is(err, router.ErrScriptTimeout) {
				t.Fatalf("err = %v after %v, want ErrScriptTimeout", err, took)
			}
			if !strings.Contains(err.Error(), "spin.lua") || !strings.Contains(err.Error(), "20ms") {
				t.Errorf("timeout error %q should name the script and the deadline", err)
			}
			if limit := 100 * deadline; took > limit {
				t.Errorf("stopped %v after the call began, more than %v for a %v deadline", took, limit, deadline)
			}
		})
	}
}

// cancelAfter is a context that reports cancellation from its limit-th Err
// call on, so that the cancellation lands while the script runs.
type cancelAfter struct {
	context.Context
	calls, limit int
}

func (c *cancelAfter) Err() error {
	c.calls++
	if c.calls >= c.limit {
		return context.Canceled
	}
	return nil
}

func TestLuaCallerCancellationStopsScript(t *testing.T) {
	ctx := &cancelAfter{Context: context.Background(), limit: 3}
	s := router.NewScript(mustProgram(t, router.Lua, `function route() while true do end end`), "x.lua", time.Hour)
	_, err := s.Select(ctx, selection(t, worker("w1", 0, 1, 0)))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if ctx.calls < 3 {
		t.Errorf("the script was never started (%d checks)", ctx.calls)
	}
}

func mustProgram(t testing.TB, lang router.Lang, src string) *router.Program {
	t.Helper()
	p, err := router.NewCompiler(router.Limits{}).Compile(lang, "x."+string(lang), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLuaBuiltinsAreCapped covers the builtins that can run or allocate far
// past a deadline in one VM instruction.
func TestLuaBuiltinsAreCapped(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"string.rep", `return string.rep("x", 1e9)`, "string.rep: result of"},
		{"method rep", `return ("ab"):rep(1e8)`, "string limit"},
		{"concat doubling", `local s = "x" for i = 1, 40 do s = s .. s end return s`, "concatenation: result of"},
		{"format width", `return string.format("%099999999d", 1)`, "width or precision too long"},
		{"format result", `local s = string.rep("x", 600000) return string.format("%s%s", s, s)`, "string.format: result of"},
		{"table.concat", `local t = {} for i = 1, 2000 do t[i] = string.rep("y", 1000) end return table.concat(t)`, "table.concat: result of"},
		{"unpack", `local t = {} return unpack(t, 1, 1e8)`, "too many results"},
		{"gsub growth", `local s = string.rep("a", 100000) return (s:gsub("a", "aaaaaaaaaaaaaaaaaaaa"))`, "string.gsub: result of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compile(t, router.Lua, "function route(r, c)\n"+tc.body+"\nend")
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := s.Select(context.Background(), selection(t, worker("w1", 0, 1, 0)))
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
				t.Errorf("the call allocated %d MiB before being stopped", grew>>20)
			}
		})
	}
}

func TestLuaHugeIndexStaysSmall(t *testing.T) {
	s := compile(t, router.Lua, `function route(r, c)
  local t = {}
  t[2e7] = true
  t[1] = c[1].id
  return t[1]
end`)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	d, err := s.Select(context.Background(), selection(t, worker("w1", 0, 1, 0)))
	runtime.ReadMemStats(&after)
	if err != nil || d.WorkerID != "w1" {
		t.Fatalf("select = %v, %v", d, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("t[2e7] = true allocated %d MiB", grew>>20)
	}
}

func TestLuaGsubLinear(t *testing.T) {
	// gopher-lua's own gsub copies the whole string per match (quadratic);
	// 200k matches would take minutes. Ours builds the result once. The
	// deadline is generous: this checks the result, not the speed.
	s := router.NewScript(mustProgram(t, router.Lua, `function route(r, c)
  local s = string.rep("ab", 200000)
  local out, n = s:gsub("a", "%0")
  local _, m = out:gsub("(a)(b)", "%2%1")
  if n == 200000 and m == 200000 and #out == 400000 then return c[1].id end
  return "wrong"
end`), "gsub.lua", time.Minute)
	d, err := s.Select(context.Background(), selection(t, worker("w1", 0, 1, 0)))
	if err != nil || d.WorkerID != "w1" {
		t.Fatalf("select = %v, %v", d, err)
	}
}

func TestLuaGsubSemantics(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{`("hello world"):gsub("o", "0")`, "hell0 w0rld"},
		{`("hello world"):gsub("(%w+)", "<%1>")`, "<hello> <world>"},
		{`("hello"):gsub("", "-")`, "-h-e-l-l-o-"},
		{`("abc"):gsub("%w", "%0%0")`, "aabbcc"},
		{`("hello world"):gsub("%w+", "x", 1)`, "x world"},
		{`("$name is $age"):gsub("%$(%w+)", {name="ann", age=7})`, "ann is 7"},
		{`("a,b"):gsub("%w", function(s) if s == "a" then return "z" end end)`, "z,b"},
		{`("abc"):gsub("()b", "%1")`, "a2c"},
		{`("100%"):gsub("%%", "%%%%")`, "100%%"},
	} {
		src := "function route(r, c) local s = " + tc.expr + " if s == " + luaQuote(tc.want) + " then return c[1].id end error(s) end"
		d, err := compile(t, router.Lua, src).Select(context.Background(), selection(t, worker("w1", 0, 1, 0)))
		if err != nil || d.WorkerID != "w1" {
			t.Errorf("%s: want %q: %v", tc.expr, tc.want, err)
		}
	}
}

func luaQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

func TestExprIsBounded(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"range", `len(1..100000000) > 0 ? "w1" : nil`, "memory budget"},
		{"repeat", `len(repeat("x", 100000000)) > 0 ? "w1" : nil`, "memory budget"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := router.NewCompiler(router.Limits{}).Compile(router.Expr, "x.expr", []byte(tc.src))
			if err != nil {
				if strings.Contains(err.Error(), tc.want) {
					return
				}
				t.Fatal(err)
			}
			_, err = router.NewScript(p, "x.expr", time.Second).Select(context.Background(), selection(t, worker("w1", 0, 1, 0)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	huge := strings.Repeat("1 + ", 20000) + "1"
	if _, err := router.NewCompiler(router.Limits{}).Compile(router.Expr, "huge.expr", []byte(huge)); err == nil {
		t.Error("a 40,000-node expression compiled")
	}
}

func TestCompileOnce(t *testing.T) {
	c := router.NewCompiler(router.Limits{})
	src := []byte(`function route(r, c) return c[1].id end`)
	a, err := c.Compile(router.Lua, "a.lua", src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Compile(router.Lua, "b.lua", src)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("identical sources compiled twice")
	}
	other, _ := c.Compile(router.Lua, "a.lua", append(src, '\n'))
	if other == a || other.Hash() == a.Hash() {
		t.Error("a different source reused the program")
	}
	if router.Hash(router.Lua, src) == router.Hash(router.Expr, src) {
		t.Error("the hash ignores the language")
	}
}

// The tags of a candidate walk in the same order in every interpreter,
// whatever tags the slot held before.
func TestLuaTagOrderDoesNotDependOnHistory(t *testing.T) {
	src := `function route(r, c)
  for k, v in pairs(c[1].tags) do if type(k) == "string" then return k == "x" and c[1].id or c[2].id end end
end`
	first := func(s *router.Script, tags ...string) string {
		d, err := s.Select(context.Background(), selection(t, worker("w1", 0, 1, 0, tags...), worker("w2", 0, 1, 0)))
		if err != nil {
			t.Fatal(err)
		}
		return d.WorkerID
	}
	used := compile(t, router.Lua, src)
	first(used, "x", "y")
	if got, fresh := first(used, "y", "x"), first(compile(t, router.Lua, src), "y", "x"); got != fresh {
		t.Errorf("a used state chose %s, a fresh one %s", got, fresh)
	}
}

func TestLuaSlowPatternIsATimeout(t *testing.T) {
	// One string.match call that backtracks for longer than the deadline:
	// whether the matcher stops it or it ends between two of the matcher's
	// checks, its answer must not count.
	s := router.NewScript(mustProgram(t, router.Lua, `function route(r, c)
  if string.match(string.rep("a", 100), ".-.-.-b") then return "w9" end
  return c[1].id
end`), "slow.lua", 5*time.Millisecond)
	if _, err := s.Select(context.Background(), selection(t, worker("w1", 0, 1, 0))); !errors.Is(err, router.ErrScriptTimeout) {
		t.Errorf("err = %v, want a timeout", err)
	}

	// The match above is usually stopped by the matcher itself. A call that
	// no check inside the interpreter sees pass its deadline (a few
	// instructions, no call into Go that consults the context, under a
	// deadline that has passed by the time it returns) must not count
	// either: the deadline is looked at once more after the call. That
	// holds in the interpreter (string.format keeps this one out of the
	// fast path) and on the fast path for a route with a loop.
	for _, src := range []string{
		`function route(r, c) return string.format("%s", c[1].id) end`,
		`function route(r, c) for _, w in ipairs(c) do return w.id end end`,
	} {
		late := router.NewScript(mustProgram(t, router.Lua, src), "late.lua", time.Nanosecond)
		if d, err := late.Select(context.Background(), selection(t, worker("w1", 0, 1, 0))); !errors.Is(err, router.ErrScriptTimeout) {
			t.Errorf("%s: a call that returned after its deadline: chose %q, err = %v; want a timeout", src, d.WorkerID, err)
		}
	}
}

// TestLoopFreeRoutesAreUntimed: a Lua route with no loop that the fast
// path runs reads no clock, as an expr program that only calls helpers:
// it runs each statement once, so its time is bounded by its length and
// the candidates, and even a deadline that has passed before it starts
// does not stop it. Its context still does.
func TestLoopFreeRoutesAreUntimed(t *testing.T) {
	for _, tc := range []struct {
		lang router.Lang
		src  string
	}{
		{router.Lua, `function route(r, c) return c[1].id end`},
		{router.Lua, `function route(r, c) if r.attempt > 1 then return nil end return dispatch.least_loaded(c) end`},
		{router.Expr, `leastLoaded(candidates)`},
	} {
		s := router.NewScript(mustProgram(t, tc.lang, tc.src), "untimed", time.Nanosecond)
		if d, err := s.Select(context.Background(), selection(t, worker("w1", 0, 1, 0))); err != nil || d.WorkerID != "w1" {
			t.Errorf("%s: chose %q, err = %v; want w1", tc.src, d.WorkerID, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Select(ctx, selection(t, worker("w1", 0, 1, 0))); err == nil {
			t.Errorf("%s: ran under a cancelled context", tc.src)
		}
	}
}

func TestLuaFormatBoundedBeforeFormatting(t *testing.T) {
	s := compile(t, router.Lua, `function route(r, c)
  local big = string.rep("x", 600000)
  return string.format("%s%s%s", big, big, big)
end`)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := s.Select(context.Background(), selection(t, worker("w1", 0, 1, 0)))
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "string.format: result of") {
		t.Fatalf("err = %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("formatting allocated %d MiB before failing", grew>>20)
	}
}

func TestExprCandidateResultUnderConcurrency(t *testing.T) {
	s := compile(t, router.Expr, `candidates[0]`)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("g%d", g)
			for range 200 {
				d, err := s.Select(context.Background(), selection(t, worker(id, 0, 1, 0)))
				if err != nil || d.WorkerID != id {
					t.Errorf("goroutine %d got %q, %v", g, d.WorkerID, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestLuaStackAndRegistryAreBounded(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"deep recursion", `local function f(n) return f(n + 1) + 1 end
function route(r, c) return f(1) end`, "stack overflow"},
		{"huge multiple return", `function route(r, c)
  local s = string.rep("x", 200000)
  return select("#", s:byte(1, -1))
end`, "registry overflow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compile(t, router.Lua, tc.src).Select(context.Background(), selection(t, worker("w1", 0, 1, 0)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// compileUnchecked compiles a Lua script past the compile-time check of
// names, to test what the sandbox refuses at run time.
func compileUnchecked(t testing.TB, src string) *router.Script {
	t.Helper()
	p, err := router.CompileLuaUnchecked("test.lua", []byte(src))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return router.NewScript(p, "test.lua", 200*time.Millisecond)
}
