package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const shipped = "../../config/dispatch.yaml"

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("version: 1\nchannels:\n  - namespace: prod\n    task_queue: email\n    routing: {lua: missing.lua}\n    workers: [{id: a, max_in_flight: 0}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cands := `[{"id":"email-1","in_flight":3,"max_in_flight":4},{"id":"email-2","max_in_flight":4},{"id":"email-3"}]`
	for _, tc := range []struct {
		name       string
		stdin      string
		args       []string
		code       int
		stdout     string // substring, or "" for empty output
		stderr     string
		stdoutNone bool
	}{
		{"no args", "", nil, exitUsage, "", "Usage:", true},
		{"help", "", []string{"help"}, exitOK, "Commands:", "", false},
		{"help route", "", []string{"help", "route"}, exitOK, "Examples:", "", false},
		{"route --help", "", []string{"route", "--help"}, exitOK, "dispatch route -c config/dispatch.yaml", "", false},
		{"validate -h", "", []string{"validate", "-h"}, exitOK, "Usage: dispatch validate", "", false},
		{"unknown command", "", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`, true},
		{"unknown flag", "", []string{"validate", "--colour"}, exitUsage, "", "flag provided but not defined", true},
		{"stray argument", "", []string{"validate", "x.yaml"}, exitUsage, "", `unexpected argument "x.yaml"`, true},
		{"validate ok", "", []string{"validate", "-c", shipped}, exitOK, "ok: 5 channels, 11 local workers, 2 worker programs", "", false},
		{"validate broken", "", []string{"validate", "-c", broken}, exitError, "", broken + ":5:20: cannot read script missing.lua", true},
		{"validate lists all", "", []string{"validate", "-c", broken}, exitError, "", broken + ":6:38: max_in_flight must be 1 or more", true},
		{"validate missing file", "", []string{"validate", "-c", filepath.Join(dir, "nope.yaml")}, exitError, "", "cannot read config", true},
		{"route", "", []string{"route", "-c", shipped, "--channel", "prod/email", "--candidates", cands}, exitOK, "email-2\n", "", false},
		{"route exclude", "", []string{"route", "-c", shipped, "--channel", "prod/email", "--candidates", cands, "--exclude", "email-2"}, exitOK, "email-3\n", "", false},
		{"route stdin", cands, []string{"route", "-c", shipped, "--channel", "prod/email", "--candidates", "-"}, exitOK, "email-2\n", "", false},
		{"route sticky", "", []string{"route", "-c", shipped, "--channel", "prod/checkout", "--candidates", `[{"id":"checkout-1"},{"id":"checkout-2"}]`, "--request", `{"workflow_id":"wf-7"}`}, exitOK, "checkout-", "", false},
		{"route none", "", []string{"route", "-c", shipped, "--channel", "prod/email", "--candidates", `[{"id":"a"}]`, "--exclude", "a"}, exitNoWorker, "", "NoWorkersAvailable: the 1 candidate is excluded (a)", true},
		{"route unknown channel", "", []string{"route", "-c", shipped, "--channel", "prod/fax", "--candidates", cands}, exitError, "", "unknown channel: prod/fax", true},
		{"route bad channel", "", []string{"route", "-c", shipped, "--channel", "prod", "--candidates", cands}, exitUsage, "", "want NAMESPACE/TASK_QUEUE", true},
		{"route missing flags", "", []string{"route", "-c", shipped}, exitUsage, "", "--channel and --candidates are required", true},
		{"route bad candidates", "", []string{"route", "-c", shipped, "--channel", "prod/email", "--candidates", `[{"id":"a","weight":2}]`}, exitUsage, "", `unknown field "weight"`, true},
		{"route duplicate candidate", "", []string{"route", "-c", shipped, "--channel", "prod/email", "--candidates", `[{"id":"a"},{"id":"a"}]`}, exitUsage, "", `"a" appears twice`, true},
		{"route bad request", "", []string{"route", "-c", shipped, "--channel", "prod/email", "--candidates", cands, "--request", `{"workflow":1}`}, exitUsage, "", `--request: unknown field "workflow"`, true},
		{"route script", "", []string{"route", "--script", "../../scripts/least_loaded.lua", "--candidates", cands}, exitOK, "email-2\n", "", false},
		{"route script expr", "", []string{"route", "--script", "../../scripts/least_loaded.expr", "--channel", "prod/email", "--candidates", cands}, exitOK, "email-2\n", "", false},
		{"route script and config", "", []string{"route", "-c", shipped, "--script", "../../scripts/least_loaded.lua", "--candidates", cands}, exitUsage, "", "-c and --script are mutually exclusive", true},
		{"route timeout without script", "", []string{"route", "-c", shipped, "--timeout", "1s", "--channel", "prod/email", "--candidates", cands}, exitUsage, "", "--lang and --timeout go with --script", true},
		{"route broken config", "", []string{"route", "-c", broken, "--channel", "prod/email", "--candidates", cands}, exitError, "", "cannot read script", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if tc.stdoutNone && stdout != "" {
				t.Errorf("stdout should be empty, got %q", stdout)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout %q lacks %q", stdout, tc.stdout)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr %q lacks %q", stderr, tc.stderr)
			}
			if tc.stderr == "" && stderr != "" {
				t.Errorf("unexpected stderr %q", stderr)
			}
		})
	}
}

func TestRouteJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, "", "route", "-c", shipped, "--channel", "prod/render", "--json",
		"--candidates", `[{"id":"r1","tags":["us"]},{"id":"r2","tags":["eu"]}]`,
		"--request", `{"workflow_id":"wf-1","input":{"region":"eu"}}`)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out routeResult
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Worker == nil || *out.Worker != "r2" || out.Lang != "lua" || !strings.HasPrefix(out.Hash, "sha256:") ||
		out.Source != "../../scripts/affinity.lua" || out.Duration == "" {
		t.Errorf("json = %+v", out)
	}
	code, stdout, _ = runCLI(t, "", "route", "-c", shipped, "--channel", "prod/render", "--json", "--candidates", `[]`)
	if code != exitNoWorker || !strings.Contains(stdout, `"worker": null`) {
		t.Errorf("no worker: exit %d, %s", code, stdout)
	}
}
