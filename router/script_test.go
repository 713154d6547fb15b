package router_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

func channel(t testing.TB) engine.ChannelName {
	t.Helper()
	ch, err := engine.DispatchChannel("prod", "email")
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func worker(id string, inFlight, maxInFlight, buffer int, tags ...string) engine.Worker {
	return engine.Worker{State: engine.ConsumerStateView{ID: id, InFlight: inFlight, MaxInFlight: maxInFlight, BufferDepth: buffer, Tags: tags}}
}

func selection(t testing.TB, cands ...engine.Worker) engine.Selection {
	return engine.Selection{
		WorkflowID: "wf-1", Channel: channel(t), ConversationID: "c1", Attempt: 1,
		Request: engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "send-email", TaskQueue: "email",
			Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"region":"eu","to":"a@example.com"}`)}},
		Candidates: cands,
	}
}

func compile(t testing.TB, lang router.Lang, src string) *router.Script {
	t.Helper()
	p, err := router.NewCompiler(router.Limits{}).Compile(lang, "test."+string(lang), []byte(src))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return router.NewScript(p, "test."+string(lang), 200*time.Millisecond)
}

func TestScriptsChoose(t *testing.T) {
	cands := []engine.Worker{worker("w1", 3, 4, 0, "us"), worker("w2", 1, 4, 0, "eu", "gpu"), worker("w3", 0, 4, 0, "eu")}
	for _, tc := range []struct {
		name string
		lang router.Lang
		src  string
		want string
	}{
		{"lua first", router.Lua, `function route(request, candidates, excluded) return candidates[1].id end`, "w1"},
		{"lua loop", router.Lua, `
function route(request, candidates, excluded)
  local best, bestLoad = nil, math.huge
  for i = 1, #candidates do
    local c = candidates[i]
    local load = (c.in_flight + c.buffer_depth) / c.max_in_flight
    if load < bestLoad then best, bestLoad = c, load end
  end
  return best and best.id
end`, "w3"},
		{"lua ipairs returns candidate", router.Lua, `
function route(request, candidates, excluded)
  for _, c in ipairs(candidates) do if c:has_tag("gpu") then return c end end
end`, "w2"},
		{"lua helpers", router.Lua, `function route(r, c, e) return dispatch.least_loaded(dispatch.with_tag(c, "eu")) end`, "w3"},
		{"lua request and json", router.Lua, `
function route(request, candidates)
  local input = dispatch.json_decode(request.input)
  return dispatch.least_loaded(dispatch.with_tag(candidates, input.region == "eu" and "gpu" or "us"))
end`, "w2"},
		{"lua concat", router.Lua, `function route(r, c) local id = "w" .. 1 + 1 return id end`, "w2"},
		{"lua none", router.Lua, `function route() return nil end`, ""},
		{"lua tags", router.Lua, `function route(r, c)
  local t = c[2].tags
  if #t == 2 and t[1] == "eu" and table.concat(t, ",") == "eu,gpu" and select("#", unpack(t)) == 2 then return c[2] end
end`, "w2"},
		{"lua pairs over a candidate", router.Lua, `function route(r, c)
  local n = 0
  for k, v in pairs(c[3]) do n = n + 1 end
  for i, w in pairs(c) do n = n + 1 end
  if n >= 9 then return c[3].id end
end`, "w3"},
		{"lua impure chunk", router.Lua, `local weights = {w1 = 1, w2 = 5, w3 = 2}
function route(r, c)
  local best, bw = nil, -1
  for _, w in ipairs(c) do if weights[w.id] > bw then best, bw = w, weights[w.id] end end
  weights.w2 = 0 -- changes only this call's table
  return best.id
end`, "w2"},
		{"expr helper", router.Expr, `leastLoaded(candidates)`, "w3"},
		{"expr filter", router.Expr, `leastLoaded(filter(candidates, "eu" in .tags))`, "w3"},
		{"expr candidate", router.Expr, `first(filter(candidates, hasTag(#, "gpu")))`, "w2"},
		{"expr withTag", router.Expr, `leastLoaded(withTag(candidates, "us"))`, "w1"},
		{"expr request", router.Expr, `request.activity_type == "send-email" ? "w1" : nil`, "w1"},
		{"expr nil", router.Expr, `nil`, ""},
		{"expr comment", router.Expr, "// pick the least loaded\nleastLoaded(candidates)", "w3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compile(t, tc.lang, tc.src)
			d, err := s.Select(context.Background(), selection(t, cands...))
			if err != nil {
				t.Fatalf("select: %v", err)
			}
			if d.WorkerID != tc.want {
				t.Errorf("chose %q, want %q", d.WorkerID, tc.want)
			}
			if d.Version.Lang != string(tc.lang) || !strings.HasPrefix(d.Version.Hash, "sha256:") {
				t.Errorf("version = %+v", d.Version)
			}
		})
	}
}

func TestBadDecisions(t *testing.T) {
	cands := []engine.Worker{worker("w1", 0, 1, 0), worker("w2", 0, 1, 0)}
	for _, tc := range []struct {
		name, src string
		lang      router.Lang
		want      string
	}{
		{"lua unknown", `function route() return "w9" end`, router.Lua, `"w9", which is not a candidate`},
		{"lua excluded", `function route() return "w0" end`, router.Lua, `"w0", which is excluded`},
		// return 3 and return {} are compile errors; through a local, the
		// values get to the host.
		{"lua number", `function route() local v = 3 return v end`, router.Lua, "number 3"},
		{"lua table", `function route() local v = {} return v end`, router.Lua, "a table"},
		{"lua empty", `function route() return "" end`, router.Lua, "an empty worker id"},
		{"expr unknown", `"w9"`, router.Expr, `"w9", which is not a candidate`},
		{"expr number", `[42, ""][0]`, router.Expr, "int 42"}, // [42, ""][0] is of any type: 42 alone is a compile error
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compile(t, tc.lang, tc.src)
			in := selection(t, cands...)
			in.Excluded = []string{"w0"}
			_, err := s.Select(context.Background(), in)
			if !errors.Is(err, router.ErrBadDecision) {
				t.Fatalf("err = %v, want ErrBadDecision", err)
			}
			var ce *router.CallError
			version := string(tc.lang) + " " + s.Version().Hash[7:19]
			if !errors.As(err, &ce) || ce.Version != s.Version() || !strings.HasPrefix(ce.Brief(), version+" returned ") ||
				err.Error() != "test."+string(tc.lang)+" ("+version+")"+strings.TrimPrefix(ce.Brief(), version) {
				t.Errorf("err = %v (%T), want a *router.CallError naming %+v", err, err, s.Version())
			}
			for _, want := range []string{tc.want, "test." + string(tc.lang), "candidates: [w1, w2]", s.Version().Hash[7:19]} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestScriptErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		lang      router.Lang
		want      string // rendered location and message start
		runtime   bool
	}{
		{"lua syntax", "function route()\n  return candidates[\nend", router.Lua, "test.lua:3:1: syntax error near 'end'\n\tend\n\t^", false},
		{"lua syntax mid-line", "function route(r, c)\n  return c[1.id\nend", router.Lua, // the caret under the token's first character
			"test.lua:2:14: syntax error near 'id'\n\t  return c[1.id\n\t             ^", false},
		{"lua no route", "local x = 1", router.Lua, "defines no function route", false},
		{"lua end missing", "function route(r, c)\n  if true then\n    return c[1].id\nend\n", router.Lua, // the last line, not one past it
			"test.lua:4: syntax error at end of file: is an end or a closing bracket missing?\n\tend", false},
		{"lua top-level error", "error('boom')", router.Lua, "test.lua:1: boom", false},
		{"lua runtime", "function route(r, c)\n  return c[1].id .. nil\nend", router.Lua, "test.lua:2:", true},
		{"lua runtime nil index", "function route(r, c)\n  local x = nil\n  return x.id\nend", router.Lua, "test.lua:3:", true},
		{"expr syntax", "leastLoaded(candidates", router.Expr, "test.expr:1:", false},
		{"expr unknown name", "leastLoded(candidates)", router.Expr, "test.expr:1:1: unknown name leastLoded (did you mean leastLoaded?)", false},
		{"expr unknown candidate field", "candidates[0].nope", router.Expr, // in the script's words, not Go's
			"test.expr:1:15: a candidate has no field nope (it has id, in_flight, max_in_flight, buffer_depth, available, tags, labels, latency_ewma, latency_peak_ewma, error_rate, exits)", false},
		{"expr unknown request field", "request.foo == 1", router.Expr, "test.expr:1:9: the request has no field foo (it has namespace,", false},
		{"expr type mismatch", "candidates[0] + 1", router.Expr, "mismatched types a candidate and int", false},
		{"expr in on candidates", "candidates[0] in candidates ? 'a' : 'b'", router.Expr, `compare ids, for example any(candidates, .id == "w1")`, false},
		{"lua syntax near a string", "function route(r, c)\n  local x = 1 \"str\"\nend", router.Lua, // the caret under the opening quote
			"test.lua:2:15: syntax error near 'str'\n\t  local x = 1 \"str\"\n\t              ^", false},
		{"expr runtime", `leastLoaded(candidates, fromJSON("3"))`, router.Expr, "test.expr:1:", true},
		// Values the checks see can never work: compile errors at their place.
		{"lua returns a number", "function route(r, c)\n  return 42\nend", router.Lua, "test.lua:2:3: route returns a number, which is never a worker id", false},
		{"lua tag not a string", "function route(r, c)\n  if c[1]:has_tag(true) then return c[1] end\nend", router.Lua, "test.lua:2:11: has_tag: argument 1 must be a string, got a boolean", false},
		{"expr returns a list", "filter(candidates, .available > 0)", router.Expr, "test.expr:1:1: the script returns a list", false},
		{"expr list not a list", "leastLoaded(42)", router.Expr, "test.expr:1:13: leastLoaded: argument 1 must be a list of candidates, got an integer", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := router.NewCompiler(router.Limits{}).Compile(tc.lang, "test."+string(tc.lang), []byte(tc.src))
			if tc.runtime {
				if err != nil {
					t.Fatalf("compile: %v", err)
				}
				_, err = router.NewScript(p, "test."+string(tc.lang), time.Second).Select(context.Background(), selection(t, worker("w1", 0, 1, 0)))
			}
			var se *router.ScriptError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want a ScriptError", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// A runtime error names the version that failed as data, and renders it
// after the message; the one-line form leaves the source line out.
func TestScriptErrorVersion(t *testing.T) {
	s := compile(t, router.Lua, "function route(r, c)\n  local x = nil\n  return x.id\nend")
	_, err := s.Select(context.Background(), selection(t, worker("w1", 0, 1, 0)))
	var se *router.ScriptError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a ScriptError", err, err)
	}
	if se.Version != s.Version() || se.Line != 3 {
		t.Errorf("version, line = %+v, %d; want %+v, 3", se.Version, se.Line, s.Version())
	}
	if strings.Contains(se.Message, s.Version().Hash[7:19]) {
		t.Errorf("message %q carries the version as text", se.Message)
	}
	suffix := " (lua " + s.Version().Hash[7:19] + ")"
	if want := "test.lua:3: " + se.Message + suffix; se.Short() != want {
		t.Errorf("Short() = %q, want %q", se.Short(), want)
	}
	if want := se.Short() + "\n\t  return x.id"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}

	// A compile error has no version.
	_, err = router.NewCompiler(router.Limits{}).Compile(router.Lua, "test.lua", []byte("function route()\n  return candidates[\nend"))
	if !errors.As(err, &se) || se.Version != (engine.RouterVersion{}) || strings.Contains(se.Short(), "\n") {
		t.Errorf("compile error %q: version %+v, want none, on one line", se.Short(), se.Version)
	}
}

// TestInlineScriptPlacesRunTimeErrors: a script written inside another
// file reports its run-time errors at that file's lines, without a column.
func TestInlineScriptPlacesRunTimeErrors(t *testing.T) {
	for _, tc := range []struct {
		lang router.Lang
		src  string
	}{
		{router.Lua, "function route(r, c)\n  local x = nil\n  return x.id\nend"},
		{router.Expr, "let tag = fromJSON(\"3\");\nlet n = 1;\nleastLoaded(candidates, tag)"},
	} {
		p, err := router.NewCompiler(router.Limits{}).Compile(tc.lang, "conf.yaml", []byte(tc.src))
		if err != nil {
			t.Fatal(err)
		}
		_, err = router.NewInlineScript(p, "conf.yaml:4 (inline)", time.Second, "conf.yaml", 10).Select(context.Background(), engine.Selection{})
		var se *router.ScriptError
		if !errors.As(err, &se) || se.File != "conf.yaml" || se.Line != 13 || se.Column != 0 || se.Snippet == "" ||
			!strings.HasPrefix(err.Error(), "conf.yaml:13: ") {
			t.Errorf("%s: %v (%+v), want it at conf.yaml:13, without a column", tc.lang, err, se)
		}
	}
}
