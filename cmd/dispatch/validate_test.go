package main

import (
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
