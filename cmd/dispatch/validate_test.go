package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateReportsEveryNameProblem: validate reports every unknown name
// in a Lua script in one run, each at its FILE:LINE:COL, in a script file
// and in an inline script (there at its YAML line), with the other
// problems of the config.
func TestValidateReportsEveryNameProblem(t *testing.T) {
	conf := configFile(t, `version: 1
channels:
  - namespace: prod
    task_queue: file
    routing: {lua: typos.lua}
    workers: [{id: a}]
  - namespace: prod
    task_queue: inline
    routing:
      lang: lua
      source: |
        function route(r, c)
          return dispatch.leastloaded(cc) or dispatch.p2cc(c)
        end
    workers: [{id: b}]
`)
	script := filepath.Join(filepath.Dir(conf), "typos.lua")
	writeTestFile(t, script, `function route(request, cands)
  local ok = request.atempt
  local best = dispatch.least_loaded(cand)
  return bset
end
`)
	code, stdout, stderr := runCLI(t, "", "validate", "-c", conf)
	if code != exitError {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitError, stdout, stderr)
	}
	want := []string{
		conf + ":13: dispatch has no leastloaded (did you mean least_loaded?)",
		conf + ":13: unknown name cc",
		conf + ":13: dispatch has no p2cc (did you mean p2c?)",
		script + ":2:22: the request has no field atempt (did you mean attempt?)",
		script + ":3:38: unknown name cand (did you mean cands?)",
		script + ":4:10: unknown name bset (did you mean best?)",
		"6 problem(s)",
	}
	var got []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, script) || strings.HasPrefix(l, conf) || strings.HasSuffix(l, "problem(s)") {
			got = append(got, l)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d problem lines, want %d:\n%s", len(got), len(want), stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("line %d: %q, want it to start %q", i, got[i], w)
		}
	}
}

// TestValidateJSON: validate --json is one document whose problems are
// the ones the text output prints, each with its place, and whose exit
// code is the text output's.
func TestValidateJSON(t *testing.T) {
	conf := configFile(t, `version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: bad.lua}
    workers: [{id: a, max_in_flight: 0}]
  - namespace: prod
    task_queue: sms
    routing: {lua: ok.lua}
`)
	dir := filepath.Dir(conf)
	writeTestFile(t, filepath.Join(dir, "bad.lua"), "function route(r, c)\n  return cc[1].id\nend\n")
	writeTestFile(t, filepath.Join(dir, "ok.lua"), "function route(r, c) return c[1].id end\n")
	good := configFile(t, "version: 1\nchannels:\n  - namespace: prod\n    task_queue: sms\n    routing: {lang: expr, source: 'candidates[0].id'}\n    workers: [{id: s1}]\n")
	refused := configFile(t, "version: 1\nchannels:\n  - namespace: prod\n    task_queue: sms\n    routing: {lang: expr, source: '\"w9\"'}\n    workers: [{id: s1}]\n")
	for _, tc := range []struct {
		name     string
		config   string
		code     int
		problems []validateProblem
		channels []string
	}{
		{"problems", conf, exitError, []validateProblem{
			{File: filepath.Join(dir, "bad.lua"), Line: 2, Column: 10, Message: "unknown name cc", Snippet: "  return cc[1].id"},
			{File: conf, Line: 6, Column: 38, Message: "max_in_flight must be 1 or more, got 0"},
		}, nil},
		{"refused", refused, exitError, []validateProblem{
			{File: refused, Line: 3, Column: 5, Message: "prod/sms: refused by the reload gate: ", Channel: "prod/sms"},
		}, nil},
		{"valid", good, exitOK, nil, []string{"prod/sms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "", "validate", "-c", tc.config, "--json")
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			if stderr != "" {
				t.Errorf("stderr %q, want none", stderr)
			}
			var got validateResult
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("%v:\n%s", err, stdout)
			}
			if got.Valid != (tc.code == exitOK) || got.File != tc.config {
				t.Errorf("valid %v, file %q; want %v, %q", got.Valid, got.File, tc.code == exitOK, tc.config)
			}
			if len(got.Problems) != len(tc.problems) {
				t.Fatalf("problems %+v, want %+v", got.Problems, tc.problems)
			}
			for i, p := range tc.problems {
				g := got.Problems[i]
				if g.File != p.File || g.Line != p.Line || g.Column != p.Column || !strings.HasPrefix(g.Message, p.Message) || g.Snippet != p.Snippet || g.Channel != p.Channel {
					t.Errorf("problem %d: %+v, want %+v", i, g, p)
				}
			}
			var chans []string
			for _, c := range got.Channels {
				chans = append(chans, c.Channel)
				if c.Lang == "" || !strings.HasPrefix(c.Hash, "sha256:") || c.Source == "" || c.Timeout == "" || c.Report == "" {
					t.Errorf("channel %+v lacks a field", c)
				}
			}
			if strings.Join(chans, " ") != strings.Join(tc.channels, " ") {
				t.Errorf("channels %v, want %v", chans, tc.channels)
			}
		})
	}
}
