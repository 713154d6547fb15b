package luafast_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/yuin/gopher-lua/parse"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/luafast"
	"github.com/aion-dispatch/dispatch/router/internal/names"
)

// fixedSelection is the selection of the table tests: three candidates, one
// excluded id.
func fixedSelection() engine.Selection {
	ch, _ := engine.DispatchChannel("prod", "email")
	return engine.Selection{
		Channel: ch, WorkflowID: "wf-1", ConversationID: "conv-1", Attempt: 2,
		Request:  engine.ActivityRequest{ActivityType: "send", Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"a":1}`)}},
		Excluded: []string{"x1"},
		Candidates: []engine.Worker{
			{State: engine.ConsumerStateView{ID: "w1", InFlight: 3, MaxInFlight: 4, BufferDepth: 1, Tags: []string{"eu"},
				LatencyEWMA: 0.020, LatencyPeakEWMA: 0.030, ErrorRate: 0.5, Exits: 2}},
			{State: engine.ConsumerStateView{ID: "w2", InFlight: 1, MaxInFlight: 4, Tags: []string{"gpu", "eu"},
				LatencyEWMA: 0.002, LatencyPeakEWMA: 0.004}},
			{State: engine.ConsumerStateView{ID: "w3", InFlight: 0, MaxInFlight: 0, BufferDepth: 2, Tags: []string{"gpu"}}},
		},
	}
}

// TestFastPathAgrees runs each script on the fixed selection and on random
// ones, both ways; fast says whether the fast path decides the fixed one.
func TestFastPathAgrees(t *testing.T) {
	for _, tc := range []struct {
		name string
		fast bool
		body string // of function route(r, c, ex)
	}{
		{"candidate", true, `return c[1]`},
		{"id", true, `return c[2].id`},
		{"nil", true, `return nil`},
		{"no value", true, `return`},
		{"no return", true, `local x = 1`},
		{"string", true, `return "w9"`},
		{"false", false, `local v = false return v`}, // through a local: the compile-time check refuses the literal
		{"number", false, `local v = 3 return v`},
		{"the list", false, `local v = c return v`},
		{"tags table", false, `return c[1].tags`},
		{"index 0", true, `return c[0]`},
		{"index 1.5", true, `return c[1.5]`},
		{"index string", true, `return c["1"]`},
		{"index past the end", true, `return c[#c + 1]`},
		{"field of nil", false, `return c[9].id`},
		{"unknown field", true, `local k = "nope" if c[1][k] == nil and c[1][1] == nil then return "none" end return "some"`},
		{"mixed ordering", false, `if c[1].id < 3 then return "a" end return "b"`},
		{"mixed equality", true, `if "1" == 1 then return "a" end return "b"`},
		{"string ordering", true, `if c[1].id < c[2].id then return "a" end return "b"`},
		{"string arithmetic", false, `local x = "10" + 1 return c[x - 10]`},
		{"modulo", true, `if -5 % 3 == 1 and 5 % -3 == -1 and 5.5 % 2 == 1.5 then return "ok" end return "bad"`},
		{"division by zero", true, `local n = 1 / 0 if n > 1e308 and -n < -1e308 then return "inf" end return "finite"`},
		{"nan", true, `local n = 0 / 0 if n ~= n and not (n < 1) and not (n >= 1) then return "nan" end return "number"`},
		{"pow", true, `if 2 ^ 10 == 1024 then return c[3] end return c[1]`},
		{"p2c_ewma", true, `return dispatch.p2c_ewma(c)`},
		{"p2c_ewma of with_tag", true, `return dispatch.p2c_ewma(dispatch.with_tag(c, "gpu"))`},
		{"least_latency", true, `return dispatch.least_latency(c)`},
		{"healthy", true, `return dispatch.least_loaded(dispatch.healthy(c, 0.25))`},
		{"healthy tag", true, `return dispatch.least_loaded(dispatch.healthy(c, 0.25), "eu")`},
		{"healthy helpers", true, `local h = dispatch.healthy(c, 0) if dispatch.p2c_ewma(h) and dispatch.rendezvous(h, "k") and dispatch.least_latency(h) then return dispatch.p2c(h) end`},
		{"healthy list", true, `local h = dispatch.healthy(c, 0.25) if #h == 2 and h[1] == c[2] and h[2] == c[3] and h[3] == nil and h.x == nil then return h[2] end return "bad"`},
		{"healthy ipairs", true, `local n = 0 for i, w in ipairs(dispatch.healthy(c, 0.4)) do n = n + i end return c[n]`},
		{"healthy identity", true, `local a, b = dispatch.healthy(c, 1), dispatch.healthy(c, 1) if a ~= b and a == a and type(a) == "userdata" then return "ok" end return "bad"`},
		{"healthy empty", true, `local h = dispatch.healthy(c, -1) if #h == 0 then return dispatch.least_loaded(c) end return "bad"`},
		{"healthy integer limit", true, `return dispatch.least_loaded(dispatch.healthy(c, 0))`},
		{"healthy two limits", true, `local a, b = dispatch.healthy(c, 0), dispatch.healthy(c, 1) return a[#a] or b[#b]`},
		{"healthy string limit", false, `local s = "0.5" return dispatch.least_loaded(dispatch.healthy(c, s))`},
		{"healthy nan limit", false, `local z = 0 return dispatch.least_loaded(dispatch.healthy(c, z / z))`},
		{"healthy of with_tag", false, `return dispatch.least_loaded(dispatch.healthy(dispatch.with_tag(c, "gpu"), 1))`},
		{"with_tag of healthy", false, `return dispatch.least_loaded(dispatch.with_tag(dispatch.healthy(c, 1), "gpu"))`},
		{"healthy returned", false, `local v = dispatch.healthy(c, 1) return v`},
		{"observed fields", true, `local best, s for _, w in ipairs(c) do local x = w.latency_ewma * (w.in_flight + 1) + w.error_rate + w.exits / 16 + w.latency_peak_ewma if best == nil or x < s then best, s = w, x end end return best`},
		{"observed field by key", true, `local k = "error_rate" if c[1][k] > 0 then return c[1] end return c[2]`},
		{"float for", true, `local n = 0 for i = 1, 2, 0.1 do n = n + 1 end return c[n % #c + 1]`},
		{"down for", true, `local last for i = #c, 1, -1 do last = c[i] end return last`},
		{"empty for", true, `for i = 5, 1 do return "ran" end return "skipped"`},
		{"for over a string", false, `for i = 1, "3" do end return "x"`},
		{"for var assigned", true, `local n = 0 for i = 1, 3 do i = i * 10 n = n + i end if n == 60 then return "ok" end return "bad"`},
		{"ipairs", true, `local n = 0 for i, w in ipairs(c) do n = n + i * w.in_flight end return c[n % #c + 1]`},
		{"ipairs index only", true, `local n = 0 for i in ipairs(c) do n = i end return c[n]`},
		{"ipairs extra names", true, `for i, w, z in ipairs(c) do if z == nil then return w end end`},
		{"ipairs tags", true, `for _, tag in ipairs(c[2].tags) do if tag == "eu" then return "found" end end return "missing"`},
		{"ipairs excluded", true, `for _, id in ipairs(ex) do return id end`},
		{"ipairs a number", false, `for _, x in ipairs(3) do end`},
		{"while break", true, `local i = 0 while true do i = i + 1 if i == 2 then break end end return c[i]`},
		{"repeat", true, `local i = 0 repeat local j = i + 1 i = j until j >= 3 return c[i]`},
		{"nested break", true, `local n = 0 for i = 1, 3 do for j = 1, 3 do if j > i then break end n = n + 1 end end return c[n - 3]`},
		{"do block scope", true, `local x = 1 do local x = 2 end return c[x]`},
		{"shadowed local", true, `local x = 1 local x = x + 1 return c[x]`},
		{"assignment short", true, `local a, b = 1, 2 a, b = 3 if b == nil then return c[a] end`},
		{"assignment long", true, `local a = 1 a = 2, 3 return c[a]`},
		{"local short", true, `local a, b = 1 if b == nil then return c[a] end`},
		{"and or", true, `return (c[9] and c[9].id) or (false and 1) or c[1].id`},
		{"literal and", true, `local x = false and c[1] return x or c[2]`},
		{"literal or", true, `return nil or c[1] and c[1].id`},
		{"literal and in a loop", true, `for _, w in ipairs(c) do local x = false and w.id if x then return x end end return "ok"`},
		{"literal return in a loop", true, `for _, w in ipairs(c) do local x = nil or (true and w) if x then return nil and x end end return "ok"`},
		{"and value", true, `local x = c[1] and 2 return c[x]`},
		{"not", true, `if not c[9] and not not c[1] then return "ok" end return "bad"`},
		{"truthy zero", true, `local z, e = 0, "" if z and e then return "true" end return "false"`},
		{"comparison value", true, `local b = c[1].in_flight > c[2].in_flight if b == true then return "gt" end return "le"`},
		{"candidate equality", true, `if c[1] == c[1] and c[1] ~= c[2] and c[1] ~= "w1" then return "ok" end return "bad"`},
		{"list equality", true, `if c == c and r == r and ex == ex and c ~= r then return "ok" end return "bad"`},
		{"fields", true, `local w = c[1] return c[w.in_flight + w.max_in_flight - w.buffer_depth - w.available - 4]`},
		{"available", true, `if c[3].available == 0 and c[2].available == 3 then return "ok" end return "bad"`},
		{"tags", true, `local w = c[2] if w.tags.gpu and not w.tags.us and w.tags[1] == "gpu" and w.tags[3] == nil and #w.tags == 2 then return "ok" end return "bad"`},
		{"tags value", true, `local t = c[2].tags.gpu if t == true then return "ok" end return "bad"`},
		{"tags of a non-candidate", false, `local w = 3 if w.tags.gpu then return "a" end return "b"`},
		{"has_tag", true, `if c[2]:has_tag("gpu") and not c[1]:has_tag("gpu") and dispatch.has_tag(c[3], "gpu") then return "ok" end return "bad"`},
		{"has_tag of a number", false, `if c[2]:has_tag(1) then return "a" end return "b"`},
		{"has_tag as a value", false, `local m = c[1].has_tag return "x"`},
		{"excluded", true, `if #ex == 1 and ex[1] == "x1" and ex[2] == nil then return ex[1] end return "bad"`},
		{"string length", true, `return c[#r.workflow_id - 2]`},
		{"length of a number", false, `return c[#3]`},
		{"least_loaded", true, `return dispatch.least_loaded(c)`},
		{"least_loaded tag", true, `return dispatch.least_loaded(c, "gpu")`},
		{"least_loaded nil tag", false, `local t = nil return dispatch.least_loaded(c, t)`},
		{"least_loaded of a candidate", false, `local one = c[1] return dispatch.least_loaded(one)`},
		{"with_tag", true, `return dispatch.least_loaded(dispatch.with_tag(c, "gpu"))`},
		{"with_tag tag", true, `return dispatch.least_loaded(dispatch.with_tag(c, "gpu"), "eu")`},
		{"with_tag list", true, `local l = dispatch.with_tag(c, "eu") if #l == 2 and l[2] == c[2] and l[3] == nil and l.x == nil then return l[1] end return "bad"`},
		{"with_tag ipairs", true, `local n = 0 for i, w in ipairs(dispatch.with_tag(c, GPU)) do n = n + i end return c[n]`},
		{"with_tag identity", true, `local a, b = dispatch.with_tag(c, "gpu"), dispatch.with_tag(c, "gpu") if a ~= b and a == a then return "ok" end return "bad"`},
		{"with_tag helpers", true, `local l = dispatch.with_tag(c, "gpu") if dispatch.rendezvous(l, "k") and dispatch.p2c(l) then return dispatch.p2c(l) end`},
		{"with_tag of a list", false, `return dispatch.least_loaded(dispatch.with_tag(dispatch.with_tag(c, "gpu"), "eu"))`},
		{"with_tag returned", false, `local v = dispatch.with_tag(c, "gpu") return v`},
		{"rendezvous", true, `return dispatch.rendezvous(c, r.workflow_id)`},
		{"rendezvous number key", false, `return dispatch.rendezvous(c, r.attempt)`},
		{"p2c", true, `return dispatch.p2c(c)`},
		{"random", true, `local x = dispatch.random() local y = dispatch.random() if x ~= y and x >= 0 and x < 1 then return c[math.floor(x * 3) + 1] end return "bad"`},
		{"random then p2c", true, `if dispatch.random() < 2 then return dispatch.p2c(c) end`},
		{"math.random", true, `local a, b, x = math.random(3), math.random(2, 3), math.random() if x < 1 and b >= 2 then return c[a] end return "bad"`},
		{"math.random float bounds", true, `return c[math.random(2.7)]`},
		{"math.random empty", false, `return c[math.random(0)]`},
		{"math.random string", false, `return c[math.random("2")]`},
		{"math.random and p2c", true, `local a = math.random(3) local id = dispatch.p2c(c) if dispatch.random() < 0.5 then return c[a] end return id`},
		{"type", true, `if type(c) == "table" and type(c[1]) == "table" and type(r) == "userdata" and type(ex) == "userdata" and type(c[1].tags) == "table" and type(dispatch.with_tag(c, "x")) == "userdata" and type(nil) == "nil" and type(1) == "number" and type("") == "string" and type(true) == "boolean" then return "ok" end return "bad"`},
		{"math", true, `return c[math.max(1, math.min(3, 2, 5), -1) + math.abs(-1) - math.floor(1.9)]`},
		{"math of a string", false, `return c[math.max(1, "2")]`},
		{"math of nil", false, `return c[math.floor(nil)]`},
		{"runtime error", false, `local x = nil return x.y`},
		{"several names, none read", true, `local a, b = 1, 2 a, b = 3, 2 return c[a - b]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "local K, GPU = -2, 'gpu'\nfunction route(r, c, ex)\n" + tc.body + "\nend"
			p := compilePair(t, src)
			if p == nil {
				t.Fatalf("does not compile:\n%s", src)
			}
			if p.fast == nil {
				t.Fatalf("not on the fast path: %v", p.why)
			}
			if got := p.check(t, fixedSelection()); got != tc.fast {
				t.Errorf("the fast path decided: %v, want %v", got, tc.fast)
			}
			r := rand.New(rand.NewPCG(3, 4))
			for range 50 {
				p.check(t, randomSelection(r))
			}
		})
	}
}

// TestRequestFieldsAgree reads every request field of the table of names
// both ways.
func TestRequestFieldsAgree(t *testing.T) {
	for _, n := range names.Of(names.RequestField) {
		src := fmt.Sprintf(`function route(r, c)
  local v = r.%s
  if v == nil then return "nil" end
  if v == 1 or v == 2 or v == 3 then return c[v] end
  return v
end`, n.Lua)
		p := compilePair(t, src)
		if !p.check(t, fixedSelection()) {
			t.Errorf("r.%s: the fast path did not decide (%v)", n.Lua, p.why)
		}
	}
}

// TestUnsupported lists what stays with the interpreter, and why.
func TestUnsupported(t *testing.T) {
	for _, tc := range []struct{ src, why string }{
		{`function route(r, c) local t = {} return c[1] end`, "TableExpr"},
		{`function route(r, c) return c[1].id .. "" end`, "StringConcat"},
		{`function route(r, c) local f = function() end return nil end`, "FunctionExpr"},
		{`function route(r, c) for k, v in pairs(c) do end end`, "generic for"},
		{`function route(r, c) return tostring(1) end`, "outside the subset"},
		{`function route(r, c) return type() end`, "outside the subset"},
		{`function route(r, c) return dispatch.json_decode(r.input) end`, "dispatch.json_decode"},
		{`local function helper() end function route(r, c) return nil end`, "top-level"},
		{`local t = {} function route(r, c) return nil end`, "not a literal"},
		{`function route(...) return nil end`, "..."},
		{`function route(r, c) return math.sqrt(4) end`, "math.sqrt"},
		{`function route(r, c) local m = math return nil end`, "global math"},
		{`function route(r, c) ::top:: return nil end`, "LabelStmt"},
		{`function route(r, c) for _, w in ipairs(c) do if false then return c[3] and c[3].id end end return "ok" end`, "a literal in a condition"},
		{`function route(r, c) if nil then elseif c[1] then end return "ok" end`, "a literal in a condition"},
		{`function route(r, c) if c[1] or true then return "ok" end end`, "a literal in a condition"},
		{`function route(r, c) repeat until true end`, "a literal in a condition"},
		{`function route(r, c) local a, b = 1, 2 a, b = b, a return c[b] end`, "several names whose values read them"},
		{`function route(r, c) local a = 0 local z = -0 if 1/z < 0 then return "neg" end return "pos" end`, "a constant negative zero"},
		{`function route(r, c) local a = 0 local z = 0 * -1 if 1/z < 0 then return "neg" end return "pos" end`, "a constant negative zero"},
		{`local A = 0 local Z = -0 function route(r, c) return nil end`, "not a literal"},
		{`function route(r, c) return c[1].labels.region end`, "labels"},
		{`function route(r, c) return dispatch.least_loaded(dispatch.healthy(c)) end`, "dispatch.healthy with 1 arguments"},
		{`function route(r, c) for _, w in ipairs(c) do if w.labels["gpu"] == "a100" then return w.id end end end`, "labels"},
	} {
		chunk, err := parse.Parse(bytes.NewReader([]byte(tc.src)), "script")
		if err != nil {
			t.Fatal(err)
		}
		_, err = luafast.Compile(chunk)
		var u *luafast.Unsupported
		if !errors.As(err, &u) || !strings.Contains(u.Error(), tc.why) {
			t.Errorf("%s: %v, want a reason with %q", tc.src, err, tc.why)
		}
	}
}

// TestRunawayIsStopped: a loop that never ends is stopped at the deadline
// on the fast path too, with call.ErrTimeout, and a cancelled context stops
// it with the context's error.
func TestRunawayIsStopped(t *testing.T) {
	for _, body := range []string{
		`while true do end`,
		`local n = 0 while true do n = n + 1 end`,
		`local f repeat until f`,
		`for i = 1, 1e300 do end`,
		`for i = 10, 1, 0 do end`,
		`while true do for _, w in ipairs(c) do end end`,
	} {
		chunk, err := parse.Parse(strings.NewReader("function route(r, c) "+body+" end"), "script")
		if err != nil {
			t.Fatal(err)
		}
		route, err := luafast.Compile(chunk)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if !route.Timed() {
			t.Errorf("%s: a route with a loop is untimed", body)
		}
		const deadline = 20 * time.Millisecond
		start := time.Now()
		_, err = route.Run(context.Background(), fixedSelection(), start.Add(deadline))
		if took := time.Since(start); !errors.Is(err, call.ErrTimeout) || took > deadline+time.Second {
			t.Errorf("%s: %v after %s, want a timeout after %s", body, err, took, deadline)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(10*time.Millisecond, cancel)
		if _, err := route.Run(ctx, fixedSelection(), time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
			t.Errorf("%s under a cancelled context: %v", body, err)
		}
	}
}

// TestTimed: a route with a loop of any kind is timed; one without runs
// each statement at most once and needs no clock.
func TestTimed(t *testing.T) {
	for _, tc := range []struct {
		body  string
		timed bool
	}{
		{`return dispatch.least_loaded(c)`, false},
		{`local free = dispatch.healthy(c, 0.5) if #free > 0 then return dispatch.p2c_ewma(free) end return dispatch.least_loaded(c, "eu")`, false},
		{`if r.attempt > 1 then return nil end local w = c[1] return w.available > 0 and w.id or dispatch.rendezvous(c, r.workflow_id)`, false},
		{`local x = r.attempt > 9 while x do end return nil`, true},
		{`local x = r.attempt > 0 repeat until x return nil`, true},
		{`for i = 1, 2 do end return nil`, true},
		{`for _, w in ipairs(c) do return w.id end`, true},
		{`if r.attempt > 1 then for _, w in ipairs(c) do return w.id end end return nil`, true},
	} {
		chunk, err := parse.Parse(strings.NewReader("function route(r, c) "+tc.body+" end"), "script")
		if err != nil {
			t.Fatal(err)
		}
		route, err := luafast.Compile(chunk)
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if route.Timed() != tc.timed {
			t.Errorf("%s: timed %v, want %v", tc.body, route.Timed(), tc.timed)
		}
	}
}

// TestNoAllocations: a decision on the fast path allocates nothing.
func TestNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled frames")
	}
	p := compilePair(t, `function route(r, c)
  local best
  for _, w in ipairs(c) do
    if w.tags.gpu and (best == nil or (w.in_flight + w.buffer_depth) * math.max(best.max_in_flight, 1)
        < (best.in_flight + best.buffer_depth) * math.max(w.max_in_flight, 1)) then
      best = w
    end
  end
  return best and best.id
end`)
	sel := fixedSelection()
	ctx := context.Background()
	p.fast.Run(ctx, sel, time.Now().Add(time.Second))
	if n := testing.AllocsPerRun(100, func() { p.fast.Run(ctx, sel, time.Now().Add(time.Second)) }); n > 0 {
		t.Errorf("%v allocations per decision", n)
	}
}
