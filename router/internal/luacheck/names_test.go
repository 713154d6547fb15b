package luacheck

import (
	"strings"
	"testing"

	"github.com/yuin/gopher-lua/parse"
)

// TestNames runs the name check on its own, without compiling: the first
// problem, its line, its token and its column on the line.
func TestNames(t *testing.T) {
	for _, tc := range []struct{ src, msg, token string }{
		{"function route(r, c)\n  return dispatch.least_loaded(c)\nend", "", ""},
		{"function route(r, cands)\n  return dispatch.least_loaded(cand)\nend", "unknown name cand (did you mean cands?)", "cand"},
		{"function route(r, c)\n  return r.regoin\nend", "the request has no field regoin", "regoin"},
		{"function route(r, c)\n  print(c[1].id)\nend", "print is not available to routing scripts", "print"},
	} {
		chunk, err := parse.Parse(strings.NewReader(tc.src), "t")
		if err != nil {
			t.Fatal(err)
		}
		ps := Names(chunk)
		if tc.msg == "" {
			if len(ps) > 0 {
				t.Errorf("%q: %+v, want no problem", tc.src, ps)
			}
			continue
		}
		if len(ps) != 1 {
			t.Errorf("%q: %+v, want one problem", tc.src, ps)
			continue
		}
		p := ps[0]
		if p.Line != 2 || !strings.HasPrefix(p.Message, tc.msg) || p.Token != tc.token {
			t.Errorf("%q: %+v, want line 2, token %q, a message starting %q", tc.src, p, tc.token, tc.msg)
		}
		line := strings.Split(tc.src, "\n")[1]
		if col := TokenColumn(line, p.Token); col < 1 || !strings.HasPrefix(line[col-1:], tc.token) {
			t.Errorf("%q: column %d does not point at %q", tc.src, col, tc.token)
		}
	}
}

// TestNamesFindsEveryProblem: three typos in a script are three problems,
// by line, each with its own suggestion; a name misspelt twice on a line is
// one.
func TestNamesFindsEveryProblem(t *testing.T) {
	src := "function route(r, cands)\n" +
		"  local best = dispatch.leastloaded(cand)\n" +
		"  if r.atempt > #cand then return cand[1].id end\n" +
		"  return bset\n" +
		"end"
	chunk, err := parse.Parse(strings.NewReader(src), "t")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line         int
		token, start string
	}{
		{2, "leastloaded", "dispatch has no leastloaded (did you mean least_loaded?)"},
		{2, "cand", "unknown name cand (did you mean cands?)"},
		{3, "atempt", "the request has no field atempt (did you mean attempt?)"},
		{3, "cand", "unknown name cand (did you mean cands?)"},
		{4, "bset", "unknown name bset (did you mean best?)"},
	}
	ps := Names(chunk)
	if len(ps) != len(want) {
		t.Fatalf("%d problems, want %d: %+v", len(ps), len(want), ps)
	}
	for i, w := range want {
		if p := ps[i]; p.Line != w.line || p.Token != w.token || !strings.HasPrefix(p.Message, w.start) {
			t.Errorf("problem %d: %+v, want line %d, token %q, a message starting %q", i, p, w.line, w.token, w.start)
		}
	}
}

// TestHelperArity: a call of a helper or of a candidate's method with a
// number of arguments the table of names does not allow is a problem; a
// last argument that is a call or ... may pass any number, so only the
// arguments before it count.
func TestHelperArity(t *testing.T) {
	for _, tc := range []struct{ call, want string }{
		{"dispatch.least_loaded(c)", ""},
		{"dispatch.least_loaded(c, 'gpu')", ""},
		{"dispatch.least_loaded()", "dispatch.least_loaded takes 1 or 2 arguments (list [, tag]), got 0"},
		{"dispatch.least_loaded(c, 'a', 'b')", "dispatch.least_loaded takes 1 or 2 arguments (list [, tag]), got 3"},
		{"dispatch.with_tag(c)", "dispatch.with_tag takes 2 arguments (list, tag), got 1"},
		{"dispatch.p2c(c, 1)", "dispatch.p2c takes 1 argument (list), got 2"},
		{"dispatch.random(1)", "dispatch.random takes no arguments, got 1"},
		{"c[1]:has_tag()", "has_tag takes 1 argument (tag), got 0"},
		{"dispatch.with_tag(f())", ""},
		{"dispatch.with_tag(c, ...)", ""},
		{"dispatch.p2c(c, 1, f())", "dispatch.p2c takes 1 argument (list), got 2 or more"},
		{"dispatch.with_tag((f()))", "dispatch.with_tag takes 2 arguments (list, tag), got 1"},
	} {
		src := "function route(r, c, ...)\n  local f = function() end\n  local x = " + tc.call + "\n  return x\nend"
		chunk, err := parse.Parse(strings.NewReader(src), "t")
		if err != nil {
			t.Fatal(err)
		}
		ps := Names(chunk)
		switch {
		case tc.want == "" && len(ps) > 0:
			t.Errorf("%s: %+v, want no problem", tc.call, ps)
		case tc.want != "" && (len(ps) != 1 || ps[0].Message != tc.want || ps[0].Line != 3):
			t.Errorf("%s: %+v, want %q on line 3", tc.call, ps, tc.want)
		}
	}
}

// TestHelperArgTypes: an argument of a helper or of a candidate's method
// whose type the checker sees, and the table of names does not allow, is a
// problem; one it cannot see passes.
func TestHelperArgTypes(t *testing.T) {
	for _, tc := range []struct{ call, want string }{
		{"dispatch.least_loaded(c, 'gpu')", ""},
		{"dispatch.least_loaded({c[1], c[2]}, r.activity_type)", ""},
		{"dispatch.least_loaded(dispatch.with_tag(c, 'gpu'))", ""},
		{"dispatch.rendezvous(c, r.workflow_id .. 'x')", ""},
		{"dispatch.has_tag(c[1], 'gpu')", ""},
		{"dispatch.least_loaded(x, y)", ""}, // what x and y hold is not known
		{"dispatch.least_loaded(42)", "dispatch.least_loaded: argument 1 must be a list of candidates, got a number"},
		{"dispatch.p2c('c')", "dispatch.p2c: argument 1 must be a list of candidates, got a string"},
		{"dispatch.p2c(c[1])", "dispatch.p2c: argument 1 must be a list of candidates, got a candidate"},
		{"dispatch.p2c(r)", "dispatch.p2c: argument 1 must be a list of candidates, got the request"},
		{"dispatch.least_loaded(c, 1)", ""}, // Lua passes a number where a string is wanted as its text, and so do the helpers
		{"dispatch.least_loaded(c, true)", "dispatch.least_loaded: argument 2 must be a string, got a boolean"},
		{"dispatch.least_loaded(c, nil)", "dispatch.least_loaded: argument 2 must be a string, got nil"},
		{"dispatch.with_tag(c, {})", "dispatch.with_tag: argument 2 must be a string, got a table"},
		{"dispatch.rendezvous(c, r.attempt > 1)", "dispatch.rendezvous: argument 2 must be a string, got a boolean"},
		{"dispatch.has_tag(c, 'gpu')", "dispatch.has_tag: argument 1 must be a candidate, got a list of candidates"},
		{"dispatch.json_decode(1)", ""},
		{"dispatch.json_decode(c)", "dispatch.json_decode: argument 1 must be a string, got a list of candidates"},
		{"c[1]:has_tag(1)", ""},
		{"c[1]:has_tag({})", "has_tag: argument 1 must be a string, got a table"},
		{"c[1]:has_tag(true)", "has_tag: argument 1 must be a string, got a boolean"},
	} {
		src := "function route(r, c)\n  local x, y\n  local v = " + tc.call + "\n  return v\nend"
		chunk, err := parse.Parse(strings.NewReader(src), "t")
		if err != nil {
			t.Fatal(err)
		}
		ps := Names(chunk)
		switch {
		case tc.want == "" && len(ps) > 0:
			t.Errorf("%s: %+v, want no problem", tc.call, ps)
		case tc.want != "" && (len(ps) != 1 || ps[0].Message != tc.want || ps[0].Line != 3):
			t.Errorf("%s: %+v, want %q on line 3", tc.call, ps, tc.want)
		}
	}
}

// TestReturns: a value route returns that can never be a worker id is a
// problem at its return; one the checker cannot see through passes, and so
// do the returns of functions other than route, and of a route something
// else may call.
func TestReturns(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"return c[1].id", ""},
		{"return c[1]", ""},
		{"return nil", ""},
		{"return", ""},
		{"return 'w' .. 1", ""},
		{"return dispatch.least_loaded(c)", ""},
		{"return r.attempt > 1 and c[1].id or nil", ""},
		{"local n = 42\n  return n", ""}, // what a local holds is not followed
		{"local f = function() return 42 end\n  return f()", ""},
		{"return 42", "route returns a number, which is never a worker id: return a worker id (a string), a candidate or nil"},
		{"return true", "route returns a boolean,"},
		{"return r.attempt > 1", "route returns a boolean,"},
		{"return {}", "route returns a table,"},
		{"return {c[1].id}", "route returns a table,"},
		{"return c", "route returns the list of candidates,"},
		{"return r", "route returns the request,"},
		{"return c[1] and 7", "route returns a number,"},
		{"return dispatch.with_tag(c, 'gpu')", "route returns dispatch.with_tag's result, list of candidates,"},
		{"return dispatch.random()", "route returns dispatch.random's result, number,"},
		{"return c[1]:has_tag('gpu')", "route returns has_tag's result, boolean,"},
	} {
		src := "function route(r, c)\n  " + tc.body + "\nend"
		chunk, err := parse.Parse(strings.NewReader(src), "t")
		if err != nil {
			t.Fatal(err)
		}
		ps := Names(chunk)
		switch {
		case tc.want == "" && len(ps) > 0:
			t.Errorf("%s: %+v, want no problem", tc.body, ps)
		case tc.want != "" && (len(ps) != 1 || !strings.HasPrefix(ps[0].Message, tc.want) || ps[0].Token != "return"):
			t.Errorf("%s: %+v, want %q at return", tc.body, ps, tc.want)
		}
	}
	// A route the script calls itself may return anything to its caller.
	src := "function route(r, c)\n  return 42\nend\nlocal g = route"
	chunk, err := parse.Parse(strings.NewReader(src), "t")
	if err != nil {
		t.Fatal(err)
	}
	if ps := Names(chunk); len(ps) > 0 {
		t.Errorf("a route read as a value: %+v, want no problem", ps)
	}
}
