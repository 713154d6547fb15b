package scenario_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
	"github.com/aion-dispatch/dispatch/scenario"
)

var update = flag.Bool("update", false, "rewrite the golden journals of the scenarios under testdata/")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestScenarios runs every scenario under testdata/scenarios against its
// golden journal; -update rewrites the goldens.
func TestScenarios(t *testing.T) {
	files, err := scenario.Find([]string{"../testdata/scenarios"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 12 {
		t.Fatalf("%d scenarios under testdata/scenarios, want at least 12", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			t.Parallel()
			res := scenario.Check(context.Background(), f, *update)
			for _, fl := range res.Failures {
				t.Errorf("%v", fl)
			}
			switch {
			case res.Err != nil:
				t.Fatal(res.Err)
			case res.Updated:
				t.Logf("updated %s", res.Golden)
			case res.Diff != "":
				t.Errorf("%s differs from the run (- golden, + run):\n%s\nto accept the run: go test ./scenario -update (or make golden)", res.Golden, res.Diff)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"unknown key", "version: 1\nchannels: []\nstepz: []\n", []string{`:3: the scenario: unknown key "stepz" (known: channels, config, defaults, description, steps, timeout, version, workers)`}},
		{"unknown key in a worker", "version: 1\nchannels: []\nworkers:\n  - {id: w1, colour: blue}\n", []string{`:4: worker: unknown key "colour" (known: channel, id, labels, max_in_flight, script, tags)`}},
		{"empty", "", []string{":1: the file is empty"}},
		{"bad labels", `version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: lua, source: "function route(r, c) return c[1].id end"}}
workers:
  - {channel: prod/email, id: w1, labels: {" region": eu}, script: [{complete: sent}]}
`, []string{`:5: worker w1: label key " region" must be UTF-8 without surrounding spaces`}},
		{"input not JSON under a JSON content type", `version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: lua, source: "function route(r, c) return c[1].id end"}}
steps:
  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send, input: "hi", content_type: application/json}
`, []string{":5: request: input: the content type says JSON but the data is not JSON (content type application/json)"}},
		{"duplicate worker", `version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: lua, source: "function route(r, c) return c[1].id end"}}
workers:
  - {channel: prod/email, id: w1, script: [{complete: ok}]}
  - {channel: prod/email, id: w1, script: [{complete: ok}]}
steps:
  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}
`, []string{":6: worker w1 on prod/email is declared twice (first at line 5)"}},
		{"no channels", "steps:\n  - replay: true\n", []string{":1: a scenario needs config: FILE or inline channels"}},
		{"held and release", `version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: lua, source: "function route(r, c) return c[1].id end"}}
workers:
  - {channel: prod/email, id: w1, script: [{hang: true, held: true}]}
steps:
  - release: {channel: prod/email}
  - release: {channel: prod/fax, id: w1}
`, []string{
			":5: worker w1: script[0]: held: true is for complete, fail or exit (a hang never answers anyway)",
			":7: release: missing id",
			":8: channel prod/fax is not in the config",
		}},
		{"unknown key in a release", "version: 1\nchannels: []\nsteps:\n  - release: {channel: prod/email, id: w1, colour: blue}\n",
			[]string{`:4: release: unknown key "colour" (known: channel, id)`}},
		{"request timeouts", `version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: lua, source: "function route(r, c) return c[1].id end"}}
steps:
  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send, schedule_to_start: 0s}
  - request: {channel: prod/email, workflow_id: wf-2, activity_type: send, schedule_to_start: soon}
  - request: {channel: prod/email, workflow_id: wf-3, activity_type: send, schedule_to_start: 3s, schedule_to_close: 2s}
  - request: {channel: prod/email, workflow_id: wf-4, activity_type: send, schedule_to_start: -3s, schedule_to_close: 2s}
`, []string{
			`:5: request: schedule_to_start "0s": want a positive duration such as 2s`,
			`:6: request: schedule_to_start "soon": want a positive duration such as 2s`,
			`:7: request: schedule_to_start 3s is longer than schedule_to_close 2s, which bounds the whole activity`,
			`:8: request: schedule_to_start "-3s": want a positive duration such as 2s`,
		}},
		{"request problems", `version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: lua, source: "function route(r, c) return c[1].id end"}}
steps:
  - request: {channel: prod/email, input: hi, content_type: application/json, start_to_close: soon, schedule_to_start: 3s, schedule_to_close: 2s}
  - request: {channel: prod/email, workflow_id: wf-2, activity_type: send, input: {1: one}}
`, []string{
			":5: request: missing workflow_id and activity_type\n",
			":5: request: input: the content type says JSON but the data is not JSON (content type application/json); give the JSON value itself, not a string, or another content_type\n",
			":5: request: start_to_close \"soon\": want a positive duration such as 2s\n",
			":5: request: schedule_to_start 3s is longer than schedule_to_close 2s, which bounds the whole activity",
			":6: request: input: not a JSON value: json: unsupported type",
		}},
		{"bad steps", `version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: lua, source: "function route(r, c) return c[1].id end"}}
workers:
  - {channel: prod/fax, id: w1, script: [{complete: ok, fail: no}]}
steps:
  - request: {channel: prod/email, workflow_id: wf-1}
  - {replay: true, remove_worker: {channel: prod/email, id: w1}}
  - swap: {channel: prod/email, lua: missing.lua}
`, []string{
			":5: channel prod/fax is not in the config",
			":5: worker w1: script[0]: want exactly one of complete, fail, exit or hang: true",
			":7: request: missing activity_type",
			":8: a step is exactly one of request, swap, add_worker, remove_worker, release or replay: true",
			":9: swap: cannot read script missing.lua",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tc.name, " ", "_")+".yaml", tc.body)
			_, err := scenario.Load(p)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestLoadRequestTimeouts: a request step's start_to_close,
// schedule_to_close and schedule_to_start reach its request; the backlog
// keys of inline channels reach the config.
func TestLoadRequestTimeouts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.yaml")
	body := `version: 1
defaults: {schedule_to_start: 4s}
channels:
  - {namespace: prod, task_queue: email, max_backlog: 2, when_full: fail, routing: {lang: lua, source: "function route(r, c) return c[1].id end"}}
workers:
  - {channel: prod/email, id: w1, script: [{complete: ok}]}
steps:
  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}
  - request: {channel: prod/email, workflow_id: wf-2, activity_type: send, schedule_to_start: 1s}
  - request: {channel: prod/email, workflow_id: wf-3, activity_type: send, start_to_close: 1s, schedule_to_close: 3s, schedule_to_start: 3s}
`
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := scenario.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []engine.ActivityRequest{
		{},
		{ScheduleToStart: time.Second},
		{StartToClose: time.Second, ScheduleToClose: 3 * time.Second, ScheduleToStart: 3 * time.Second},
	} {
		r := s.Steps[i].Request.Request
		if r.StartToClose != want.StartToClose || r.ScheduleToClose != want.ScheduleToClose || r.ScheduleToStart != want.ScheduleToStart {
			t.Errorf("step %d: start-to-close %s, schedule-to-close %s, schedule-to-start %s; want %s, %s, %s", i+1,
				r.StartToClose, r.ScheduleToClose, r.ScheduleToStart, want.StartToClose, want.ScheduleToClose, want.ScheduleToStart)
		}
	}
	if got, want := s.Config.Channels[0].Backlog, (engine.BacklogPolicy{MaxBacklog: 2, FailWhenFull: true, ScheduleToStart: 4 * time.Second}); got != want {
		t.Errorf("the channel's backlog policy %+v, want %+v", got, want)
	}
}

// A golden that differs fails with a diff, and -update rewrites it.
func TestCheckAndUpdate(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("../testdata/scenarios/failed_activity.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src = []byte(strings.ReplaceAll(string(src), "../../scripts/", mustAbs(t, "../scripts")+"/"))
	path := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := scenario.Check(context.Background(), path, false); res.Err == nil || !strings.Contains(res.Err.Error(), "-update") {
		t.Fatalf("no golden: %+v, want an error saying how to create it", res)
	}
	if res := scenario.Check(context.Background(), path, true); !res.Updated || !res.Passed() {
		t.Fatalf("update: %+v", res)
	}
	if res := scenario.Check(context.Background(), path, false); res.Diff != "" || !res.Passed() {
		t.Fatalf("after update: %+v", res)
	}
	golden := scenario.GoldenPath(path)
	data, _ := os.ReadFile(golden)
	if err := os.WriteFile(golden, []byte(strings.Replace(string(data), "card declined", "card accepted", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := scenario.Check(context.Background(), path, false)
	if res.Passed() {
		t.Fatalf("changed golden: %+v", res)
	}
	// A unified diff: the golden's line (-) and the run's (+), in a hunk
	// that gives their line numbers.
	for _, re := range []string{`(?m)^--- ` + regexp.QuoteMeta(golden) + `$`, `(?m)^\+\+\+ run$`, `(?m)^@@ -\d+,\d+ \+\d+,\d+ @@$`,
		`(?m)^-\{.*card accepted.*\}$`, `(?m)^\+\{.*card declined.*\}$`} {
		if !regexp.MustCompile(re).MatchString(res.Diff) {
			t.Errorf("the diff lacks %s:\n%s", re, res.Diff)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Scenarios that load but cannot run as written fail with their step's
// location and what to do.
func TestRunErrors(t *testing.T) {
	head := `version: 1
timeout: 500ms
channels:
  - namespace: prod
    task_queue: email
    routing: {lang: lua, source: "function route(r, c) return c[1].id end"}
workers:
  - {channel: prod/email, id: w1, script: [%s]}
steps:
%s`
	for _, tc := range []struct {
		name, script, steps, want string
	}{
		{"hang without a timeout", "{hang: true}",
			"  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}\n",
			".yaml:10: the request did not finish within the scenario's timeout (500ms)"},
		{"async to a worker that answers", "{complete: ok, latency: 1ms}",
			"  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send, async: true}\n  - request: {channel: prod/email, workflow_id: wf-2, activity_type: send}\n",
			".yaml:10: the async request of line 10 finished while the scenario went on; async needs a worker that hangs or holds it (held: true), or a wait in the backlog"},
		{"a request to a worker that holds it", "{complete: ok, held: true}",
			"  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}\n",
			".yaml:10: the request did not finish within the scenario's timeout (500ms)"},
		{"release a worker that holds nothing", "{complete: ok, held: true}",
			"  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send, async: true}\n  - release: {channel: prod/email, id: w1}\n  - release: {channel: prod/email, id: w1}\n",
			".yaml:12: release: worker w1 holds no activity (an action with held: true)"},
		{"release an unknown worker", "{complete: ok}",
			"  - release: {channel: prod/email, id: w9}\n",
			".yaml:10: release: prod/email has no worker w9"},
		{"remove an unknown worker", "{complete: ok}",
			"  - remove_worker: {channel: prod/email, id: w9}\n",
			".yaml:10: remove_worker: prod/email has no worker w9"},
		{"add a worker that runs", "{complete: ok}",
			"  - add_worker: {channel: prod/email, id: w1, script: [{complete: ok}]}\n",
			".yaml:10: worker w1: start worker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.yaml")
			if err := os.WriteFile(path, []byte(fmt.Sprintf(head, tc.script, tc.steps)), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := scenario.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard: the scenario's timeout ends a hang
			defer cancel()
			_, err = scenario.Run(ctx, s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRunHonoursACancelledContext(t *testing.T) {
	s, err := scenario.Load("../testdata/scenarios/least_loaded_lua.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := scenario.Run(ctx, s); err == nil {
		t.Fatal("Run with a cancelled context: no error")
	}
}

// TestGoldenIgnoresEditsThatChangeNoDecision: router hashes are numbered in
// a golden journal, so a comment added to a script leaves the scenario
// passing, while an edit that changes a decision fails it.
func TestGoldenIgnoresEditsThatChangeNoDecision(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("pick.lua", "function route(r, c) return c[1].id end\n")
	write("s.yaml", `version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: pick.lua}
workers:
  - {channel: prod/email, id: w1, script: [{complete: ok}]}
  - {channel: prod/email, id: w2, script: [{complete: ok}]}
steps:
  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}
`)
	path := filepath.Join(dir, "s.yaml")
	if res := scenario.Check(context.Background(), path, true); !res.Updated {
		t.Fatalf("update: %+v", res)
	}
	golden, _ := os.ReadFile(scenario.GoldenPath(path))
	if !strings.Contains(string(golden), `"hash":"v1"`) {
		t.Fatalf("golden journal without a numbered version:\n%s", golden)
	}
	write("pick.lua", "-- the first candidate, always\nfunction route(r, c) return c[1].id end\n")
	if res := scenario.Check(context.Background(), path, false); !res.Passed() {
		t.Fatalf("a comment failed the scenario: %v\n%s", res.Err, res.Diff)
	}
	write("pick.lua", "function route(r, c) return c[2].id end\n")
	if res := scenario.Check(context.Background(), path, false); res.Passed() || !strings.Contains(res.Diff, `"worker_id":"w2"`) {
		t.Fatalf("a changed decision passed: %+v", res)
	}
}

// TestGoldenNumbersOnlyRouterHashes: text that merely looks like a hash (in
// a worker's failure, in a script's own error) is left as it is.
func TestGoldenNumbersOnlyRouterHashes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(path, []byte(`version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lang: lua, source: "function route(r, c) if r.workflow_id == 'wf-2' then error('bad expr 0123456789ab') end return c[1].id end"}
workers:
  - {channel: prod/email, id: w1, script: [{fail: "lua cafe00000000 crashed"}]}
steps:
  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}
  - request: {channel: prod/email, workflow_id: wf-2, activity_type: send}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := scenario.Check(context.Background(), path, true); !res.Updated {
		t.Fatalf("update: %+v", res)
	}
	golden, _ := os.ReadFile(scenario.GoldenPath(path))
	for _, want := range []string{`"hash":"v1"`, "lua cafe00000000 crashed", "bad expr 0123456789ab (lua v1)"} {
		if !strings.Contains(string(golden), want) {
			t.Errorf("golden journal lacks %q:\n%s", want, golden)
		}
	}
}

// A swap to a script that does not compile is a config.Error at the swap
// step that keeps the script's error as data: errors.As reaches it, with
// its own line, and the source line and caret are rendered only by Error.
func TestLoadKeepsSwapScriptErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.lua"), []byte("function route(r, c)\n  return c[1.id\nend"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(path, []byte(`version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: lua, source: "function route(r, c) return c[1].id end"}}
steps:
  - swap: {channel: prod/email, lua: bad.lua}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := scenario.Load(path)
	var e *config.Error
	var se *router.ScriptError
	if !errors.As(err, &e) || !errors.As(err, &se) {
		t.Fatalf("err = %v, want a config.Error with a *router.ScriptError", err)
	}
	bad := filepath.Join(dir, "bad.lua")
	short := path + ":5: swap: " + bad + ":2:14: syntax error near 'id'"
	if se.Line != 2 || se.File != bad || e.Line != 5 || e.Short() != short ||
		err.Error() != short+"\n\t  return c[1.id\n\t             ^" {
		t.Errorf("script error at %s:%d, config error %q; want %s:2, %q and the source line and caret", se.File, se.Line, err, bad, short)
	}
}

// An inline swap script's problems, at compile time and at run time, are
// placed at their lines of the scenario file, as a config's inline
// scripts' are.
func TestInlineSwapErrorsAtScenarioLines(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	head := `version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: lua, source: "function route(r, c) return c[1].id end"}}
workers:
  - {channel: prod/email, id: w1, script: [{complete: sent}]}
steps:
  - swap:
      channel: prod/email
      lang: lua
      source: |
        function route(r, c)
`
	bad := write("bad.yaml", head+"          local x = cand\n          return c[1].inflight\n        end\n")
	_, err := scenario.Load(bad)
	var e *config.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want config errors", err)
	}
	for _, want := range []string{bad + ":12: swap: unknown name cand", bad + ":13: swap: a candidate has no field inflight"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant it to contain %q", err, want)
		}
	}

	fails := write("fails.yaml", head+"          local t = nil\n          return t.id\n        end\n"+
		"  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}\n")
	s, err := scenario.Load(fails)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := scenario.Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	var msg string
	for _, op := range ops {
		if op.Kind == engine.OpConversationClosed {
			msg = op.Message
		}
	}
	if want := "routing failed: fails.yaml:13: attempt to index"; !strings.Contains(msg, want) {
		t.Errorf("the routing error is %q, want it at %q", msg, want)
	}
}

// A scenario whose run records nothing gets its (empty) golden journal
// from -update all the same, and then passes without it.
func TestUpdateWritesAnEmptyGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quiet.yaml")
	if err := os.WriteFile(path, []byte(`version: 1
channels:
  - {namespace: prod, task_queue: email, routing: {lang: lua, source: "function route(r, c) return c[1] end"}}
steps:
  - add_worker: {channel: prod/email, id: w9, script: [{complete: sent}]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := scenario.Check(context.Background(), path, true); res.Err != nil || !res.Updated {
		t.Fatalf("-update: %+v", res)
	}
	if _, err := os.Stat(scenario.GoldenPath(path)); err != nil {
		t.Fatalf("no golden written: %v", err)
	}
	if res := scenario.Check(context.Background(), path, false); !res.Passed() {
		t.Fatalf("then: %+v", res)
	}
}
