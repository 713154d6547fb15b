//go:build linux

package command_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aion-dispatch/dispatch/command"
	"github.com/aion-dispatch/dispatch/engine"
)

// helperRunner returns a Runner running the helper mode with env.
func helperRunner(t *testing.T, mode string, opts command.RunnerOptions, env ...string) *command.Runner {
	t.Helper()
	opts.Path = self(t)
	opts.Env = append(helperEnviron(mode), env...)
	r, err := command.NewRunner(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func handle(t *testing.T, ctx context.Context, r *command.Runner, req engine.ActivityRequest) engine.ActivityResult {
	t.Helper()
	type out struct {
		res engine.ActivityResult
		err error
	}
	o := within(t, func() out {
		res, err := r.Handle(ctx, req)
		return out{res, err}
	})
	if o.err != nil {
		t.Fatalf("Handle: %v", o.err)
	}
	return o.res
}

func TestRunnerEnds(t *testing.T) {
	json := engine.Payload{ContentType: "application/json", Data: []byte(`{"a": 1}`)}
	tests := []struct {
		name   string
		mode   string
		env    []string
		opts   command.RunnerOptions
		req    engine.ActivityRequest
		status engine.ResultStatus
		output string   // the completed output, exactly
		ctype  string   // its content type
		errHas []string // substrings of the failure message
	}{
		{name: "stdin to stdout", mode: "cat", req: engine.ActivityRequest{Input: json},
			status: engine.StatusCompleted, output: `{"a": 1}`, ctype: "application/json"},
		{name: "output content type", mode: "cat", opts: command.RunnerOptions{OutputContentType: "text/plain"},
			req: engine.ActivityRequest{Input: json}, status: engine.StatusCompleted, output: `{"a": 1}`, ctype: "text/plain"},
		{name: "empty input and output", mode: "cat", status: engine.StatusCompleted},
		{name: "environment", mode: "env", env: []string{"EXTRA_X=1"},
			req: engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "upper", TaskQueue: "ns/q",
				Input: engine.Payload{ContentType: "text/plain", Data: []byte("x")}, StartToClose: 1500 * time.Millisecond},
			status: engine.StatusCompleted, ctype: "text/plain",
			output: "DISPATCH_ACTIVITY_TYPE=upper\nDISPATCH_CONTENT_TYPE=text/plain\nDISPATCH_START_TO_CLOSE_MS=1500\n" +
				"DISPATCH_TASK_QUEUE=ns/q\nDISPATCH_WORKFLOW_ID=wf-1\nEXTRA_X=1\n"},
		{name: "non-zero exit", mode: "fail", env: []string{"COMMAND_TEST_STDERR=\n  no such file  \n", "COMMAND_TEST_CODE=3"},
			status: engine.StatusFailed, errHas: []string{"exited with status 3: no such file"}},
		{name: "non-zero exit, no stderr", mode: "fail", env: []string{"COMMAND_TEST_CODE=1"},
			status: engine.StatusFailed, errHas: []string{"exited with status 1 (nothing on stderr)"}},
		{name: "killed by a signal", mode: "selfkill",
			status: engine.StatusFailed, errHas: []string{"was killed by SIGKILL"}},
		{name: "stdout bound", mode: "flood", opts: command.RunnerOptions{MaxOutput: 10000},
			status: engine.StatusFailed, errHas: []string{"wrote more than 10000 bytes to stdout", "sent SIGTERM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := helperRunner(t, tt.mode, tt.opts, tt.env...)
			res := handle(t, context.Background(), r, tt.req)
			if res.Status != tt.status {
				t.Fatalf("status %v, want %v (%+v)", res.Status, tt.status, res)
			}
			if tt.status == engine.StatusCompleted {
				if got := string(res.Output.Data); got != tt.output || res.Output.ContentType != tt.ctype {
					t.Errorf("output %q (%q), want %q (%q)", got, res.Output.ContentType, tt.output, tt.ctype)
				}
			}
			for _, s := range tt.errHas {
				if !strings.Contains(res.Error, s) {
					t.Errorf("error %q does not say %q", res.Error, s)
				}
			}
			if tt.status == engine.StatusFailed && !strings.Contains(res.Error, "program "+self(t)) {
				t.Errorf("error %q does not name the program", res.Error)
			}
		})
	}
}

func TestRunnerStderrTail(t *testing.T) {
	// 3 bytes of "€" cut by the tail's start, then lots of text: the tail
	// keeps the last 64 bytes, valid UTF-8, marked as cut.
	stderr := strings.Repeat("€", 2000) + " the end \n"
	r := helperRunner(t, "fail", command.RunnerOptions{Program: command.Program{StderrTail: 64}},
		"COMMAND_TEST_STDERR="+stderr, "COMMAND_TEST_CODE=1")
	res := handle(t, context.Background(), r, engine.ActivityRequest{})
	_, tail, ok := strings.Cut(res.Error, "status 1: ")
	if !ok {
		t.Fatalf("error %q", res.Error)
	}
	if !utf8.ValidString(tail) || !strings.HasPrefix(tail, "…€") || !strings.HasSuffix(tail, "€ the end") {
		t.Errorf("tail %q", tail)
	}
	if n := len(strings.TrimPrefix(tail, "…")); n > 64 {
		t.Errorf("tail of %d bytes, want at most 64", n)
	}
}

func TestRunnerShell(t *testing.T) {
	r, err := command.NewRunner(command.RunnerOptions{Program: command.Program{
		Path: "/bin/sh", Args: []string{"-c", `printf '%s:' "$DISPATCH_WORKFLOW_ID"; cat; echo oops >&2; exit "$1"`, "sh", "0"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	res := handle(t, context.Background(), r, engine.ActivityRequest{WorkflowID: "wf", Input: engine.Payload{Data: []byte("in")}})
	if res.Status != engine.StatusCompleted || string(res.Output.Data) != "wf:in" {
		t.Errorf("%+v", res)
	}
}

func TestRunnerCannotStart(t *testing.T) {
	if _, err := command.NewRunner(command.RunnerOptions{Program: command.Program{Path: "no-such-program-here"}}); err == nil ||
		!strings.Contains(err.Error(), "no-such-program-here") {
		t.Errorf("NewRunner: %v", err)
	}
	// A program that goes away after the runner was made.
	path := filepath.Join(t.TempDir(), "gone.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := command.NewRunner(command.RunnerOptions{Program: command.Program{Path: path}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	res, err := r.Handle(context.Background(), engine.ActivityRequest{})
	if err == nil || !strings.Contains(err.Error(), "start program "+path) || !res.IsZero() {
		t.Errorf("Handle: %+v, %v", res, err)
	}
}

// TestRunnerStops cancels activities whose programs do not end by
// themselves: every process of the group is gone when Handle returns, and
// no descriptor is left open.
func TestRunnerStops(t *testing.T) {
	tests := []struct {
		name     string
		mode     string
		env      []string
		pids     int
		deadline bool // the context's deadline passes, rather than a cancel
		errHas   []string
	}{
		{name: "cancel", mode: "hang", pids: 1,
			errHas: []string{"was cancelled (context canceled); sent SIGTERM to its process group; it was killed by SIGTERM"}},
		{name: "deadline", mode: "hang", pids: 1, deadline: true,
			errHas: []string{"timed out (context deadline exceeded)", "killed by SIGTERM"}},
		{name: "SIGTERM ignored", mode: "ignore-term", pids: 1,
			errHas: []string{"then SIGKILL after 50ms; it was killed by SIGKILL"}},
		{name: "grandchild", mode: "grandchild", pids: 2,
			errHas: []string{"killed by SIGTERM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready := newReady(t)
			r := helperRunner(t, tt.mode, command.RunnerOptions{Program: command.Program{KillGrace: 50 * time.Millisecond}},
				append(tt.env, ready.env())...)
			fds := openFDs(t)
			var ctx context.Context
			var stop func()
			if tt.deadline {
				ctx, stop = newDeadlineCtx()
			} else {
				ctx, stop = context.WithCancel(context.Background())
			}
			done := make(chan engine.ActivityResult, 1)
			go func() {
				res, _ := r.Handle(ctx, engine.ActivityRequest{})
				done <- res
			}()
			pids := ready.pids(t, tt.pids)
			stop()
			var res engine.ActivityResult
			select {
			case res = <-done:
			case <-time.After(guard):
				t.Fatal("Handle did not return")
			}
			if res.Status != engine.StatusFailed {
				t.Fatalf("%+v", res)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(res.Error, s) {
					t.Errorf("error %q does not say %q", res.Error, s)
				}
			}
			if exists(pids[0]) {
				t.Errorf("the program %d is still there (not reaped)", pids[0])
			}
			for _, pid := range pids[1:] {
				if !gone(pid) {
					t.Errorf("process %d of the program's group still runs", pid)
				}
			}
			if n := openFDs(t); n != fds {
				t.Errorf("%d descriptors open, %d before", n, fds)
			}
		})
	}
}

// TestRunnerLeftovers: a program that exits while a child it started still
// holds its stdout completes at once, and the child is killed.
func TestRunnerLeftovers(t *testing.T) {
	ready := newReady(t)
	r := helperRunner(t, "grandchild", command.RunnerOptions{Program: command.Program{KillGrace: time.Hour}},
		ready.env(), "COMMAND_TEST_THEN=exit")
	done := make(chan engine.ActivityResult, 1)
	go func() {
		res, _ := r.Handle(context.Background(), engine.ActivityRequest{})
		done <- res
	}()
	pids := ready.pids(t, 2)
	var res engine.ActivityResult
	select {
	case res = <-done:
	case <-time.After(guard):
		t.Fatal("Handle did not return while a grandchild holds stdout")
	}
	if res.Status != engine.StatusCompleted || string(res.Output.Data) != "out" {
		t.Errorf("%+v", res)
	}
	if !gone(pids[1]) {
		t.Errorf("the grandchild %d still runs", pids[1])
	}
}

func TestRunnerCancelledBeforeStart(t *testing.T) {
	r := helperRunner(t, "cat", command.RunnerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := handle(t, ctx, r, engine.ActivityRequest{})
	if res.Status != engine.StatusFailed || !strings.Contains(res.Error, "was not started: was cancelled") {
		t.Errorf("%+v", res)
	}
}

// TestProgramDiesWithItsWorker: when the process running a program is
// killed with SIGKILL (a crashed or killed dispatch worker), the program,
// though it ignores SIGTERM and is in a process group of its own, dies
// too, rather than run on as an orphan.
func TestProgramDiesWithItsWorker(t *testing.T) {
	rp := newReady(t)
	parent := exec.Command(self(t))
	parent.Env = append(os.Environ(), append(helperEnviron("runner-parent"), rp.env())...)
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- parent.Wait() }()
	pids := rp.pids(t, 2) // the worker's, then its program's
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-waited
	if !gone(pids[1]) {
		t.Fatalf("program %d outlived its worker %d by %s", pids[1], pids[0], guard)
	}
}
