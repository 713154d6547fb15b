package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/node"
)

// runConfig writes a config with two channels and its script into a new
// directory and returns the config's path.
func runConfig(t *testing.T, behavior string) string {
	return runConfig2(t, behavior, behavior)
}

// runConfig2 is runConfig with different behaviours for e1 and e2.
func runConfig2(t *testing.T, behavior1, behavior2 string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("pick.lua", "function route(r, c) return dispatch.least_loaded(c) end\n")
	write("dispatch.yaml", fmt.Sprintf(`version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: pick.lua}
    workers:
      - {id: e1, max_in_flight: 2, behavior: %s}
      - {id: e2, max_in_flight: 2, behavior: %s}
  - namespace: prod
    task_queue: sms
    routing: {lang: expr, source: "leastLoaded(candidates)"}
    workers: [{id: s1}]
`, behavior1, behavior2))
	return filepath.Join(dir, "dispatch.yaml")
}

// fakeSignals is an env whose signals the test sends.
type fakeSignals struct {
	mu  sync.Mutex
	chs []chan<- os.Signal
}

func (f *fakeSignals) notify(c chan<- os.Signal, _ ...os.Signal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.chs = append(f.chs, c)
}

func (f *fakeSignals) stop(chan<- os.Signal) {}

func (f *fakeSignals) send(s os.Signal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.chs {
		c <- s
	}
}

// syncBuffer is a bytes.Buffer safe for the run's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRun runs `dispatch run` in the background with stdin from a pipe and
// returns the pipe, the node once started, the signals and a wait function.
func startRun(t *testing.T, args ...string) (stdin *io.PipeWriter, n *node.Node, sig *fakeSignals, wait func() (int, string, string)) {
	t.Helper()
	return startRunTo(t, new(syncBuffer), args...)
}

// startRunTo is startRun with stderr written to stderr as the run goes.
func startRunTo(t *testing.T, stderr *syncBuffer, args ...string) (stdin *io.PipeWriter, n *node.Node, sig *fakeSignals, wait func() (int, string, string)) {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	sig = &fakeSignals{}
	var stdout syncBuffer
	started := make(chan *node.Node, 1)
	e := &env{stdin: pr, stdout: &stdout, stderr: stderr, notify: sig.notify, stopNotify: sig.stop,
		started: func(n *node.Node) { started <- n }}
	code := make(chan int, 1)
	go func() { code <- runEnv(append([]string{"run"}, args...), e) }()
	select {
	case n = <-started:
	case c := <-code:
		t.Fatalf("run ended before starting: exit %d\n%s%s", c, stdout.String(), stderr.String())
	}
	return pw, n, sig, func() (int, string, string) {
		select {
		case c := <-code:
			return c, stdout.String(), stderr.String()
		case <-time.After(30 * time.Second): // a hang guard, not a timing
			t.Fatalf("run did not end\n%s%s", stdout.String(), stderr.String())
			return 0, "", ""
		}
	}
}

// eventually polls cond until it holds; the deadline only guards a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRunSampleLoad(t *testing.T) {
	conf := runConfig2(t, "{latency: 1ms, exit_rate: 0.1, restart_after: 1ms}", "{latency: 1ms}")
	code, stdout, stderr := runCLI(t, "", "run", "-c", conf, "--sample", "100", "--seed", "7")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"200 activities in ", "200 completed, 0 not completed",
		"prod/email", "prod/sms", "e1", "e2", "s1",
		"lua     sha256:", "pick.lua", "expr    sha256:", "dispatch.yaml:9 (inline)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	if strings.ContainsAny(stderr+stdout, "\r\033") {
		t.Errorf("control characters off a terminal:\n%q", stderr)
	}
}

func TestRunRequests(t *testing.T) {
	conf := runConfig(t, "{}")
	reqs := filepath.Join(t.TempDir(), "requests.jsonl")
	lines := strings.Join([]string{
		`{"channel": "prod/email", "workflow_id": "wf-1", "activity_type": "send", "input": {"to": "a"}}`,
		`{"channel": "prod/email", "workflow_id": "wf-2", "activity_typ": "send"}`,
		``,
		`{"channel": "prod/sms", "workflow_id": "wf-3", "activity_type": "text", "input": "hi", "start_to_close": "2s"}`,
		`{"channel": "prod/fax", "workflow_id": "wf-4", "activity_type": "fax"}`,
		`{"channel": "prod/sms", "workflow_id": "wf-5", "activity_type": "text", "start_to_close": "soon"}`,
		`not json`,
	}, "\n")
	if err := os.WriteFile(reqs, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "", "run", "-c", conf, "--requests", reqs)
	if code != exitError {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		reqs + `:2: unknown field "activity_typ"`,
		reqs + `:5: dispatch prod/fax workflow wf-4: worker pool: unknown channel prod/fax (the config has prod/email, prod/sms)`,
		reqs + `:6: start_to_close "soon": want a positive duration`,
		reqs + `:7: not valid JSON at byte 2: invalid character 'o' in literal null`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	for _, want := range []string{
		"3 activities in ", "2 completed, 1 not completed",
		"exit 1: 1 of 3 activities did not complete; 3 lines of --requests were not valid activities",
		"unknown channel",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

func TestRunInterruptDrains(t *testing.T) {
	conf := runConfig(t, "{latency: 1s}")
	stdin, n, sig, wait := startRun(t, "-c", conf, "--requests", "-")
	for i := range 3 {
		fmt.Fprintf(stdin, `{"channel": "prod/email", "workflow_id": "wf-%d", "activity_type": "send"}`+"\n", i)
	}
	eventually(t, "three dispatched", func() bool { return n.Counters().Dispatched == 3 })
	if c := n.Counters(); c.Completed != 0 {
		t.Fatalf("counters %+v before the interrupt: want all three still in flight (the latency is 1s)", c)
	}
	sig.send(os.Interrupt) // stdin stays open: the run must end anyway
	code, stdout, stderr := wait()
	if code != 130 {
		t.Fatalf("exit %d, want 130 (SIGINT)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "3 activities in ") || !strings.Contains(stdout, "3 completed, 0 not completed") ||
		!strings.Contains(stdout, "exit 130: interrupted by SIGINT") || !strings.Contains(stderr, "letting the activities in flight finish") {
		t.Errorf("want the three in flight finished and the interrupt told:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}

// TestRunTerminateAbandonsAfterTheDrainTimeout: SIGTERM lets the activities
// in flight finish, but no longer than --drain-timeout: a run whose workers
// hang still ends, with its summary, exit 143.
func TestRunTerminateAbandonsAfterTheDrainTimeout(t *testing.T) {
	conf := runConfig(t, "{latency: 1h}")
	stdin, n, sig, wait := startRun(t, "-c", conf, "--requests", "-", "--drain-timeout", "20ms")
	fmt.Fprintln(stdin, `{"channel": "prod/email", "workflow_id": "wf-1", "activity_type": "send"}`)
	eventually(t, "dispatched", func() bool { return n.Counters().Dispatched == 1 })
	sig.send(syscall.SIGTERM)
	code, stdout, stderr := wait()
	if code != 143 {
		t.Fatalf("exit %d, want 143 (SIGTERM)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"1 activities in ", "0 completed, 1 not completed", "abandoned the activities in flight",
		"exit 143: interrupted by SIGTERM; 1 of 1 activities did not complete"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "drain timeout (20ms): abandoning the activities in flight") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// TestRunEndsOnSignalWhileAScriptIsAPipe: a watched script replaced by a
// named pipe is reported, and does not keep the run from ending.
func TestRunEndsOnSignalWhileAScriptIsAPipe(t *testing.T) {
	conf := runConfig(t, "{}")
	script := filepath.Join(filepath.Dir(conf), "pick.lua")
	var log syncBuffer
	_, n, sig, wait := startRunTo(t, &log, "-c", conf, "--requests", "-", "--watch")
	inService := n.Config().Channels[0].Routing.Program.Hash()
	if err := os.Remove(script); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(script, 0o644); err != nil {
		t.Fatal(err)
	}
	sig.send(syscall.SIGHUP)
	eventually(t, "the pipe reported", func() bool { return strings.Contains(log.String(), "is a named pipe, not a regular file") })
	sig.send(os.Interrupt)
	code, stdout, stderr := wait()
	if code != 130 {
		t.Fatalf("exit %d, want 130\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "0 activities in ") || n.Config().Channels[0].Routing.Program.Hash() != inService {
		t.Errorf("want the summary and the script in service kept:\n%s", stdout)
	}
}

func TestRunWatchReloadsOnSIGHUP(t *testing.T) {
	conf := runConfig(t, "{}")
	script := filepath.Join(filepath.Dir(conf), "pick.lua")
	stdin, n, sig, wait := startRun(t, "-c", conf, "--requests", "-", "--watch")
	send := func(wf string) {
		fmt.Fprintf(stdin, `{"channel": "prod/email", "workflow_id": %q, "activity_type": "send"}`+"\n", wf)
	}
	send("wf-1")
	eventually(t, "first completed", func() bool { return n.Counters().Completed == 1 })
	if err := os.WriteFile(script, []byte("function route(r, c) return c[#c].id end\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sig.send(syscall.SIGHUP)
	eventually(t, "script reloaded", func() bool {
		ch := n.Config().Channels[0]
		return strings.Contains(string(ch.Routing.Source), "#c")
	})
	send("wf-2")
	stdin.Close()
	code, stdout, stderr := wait()
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if strings.Count(stdout, "pick.lua") != 2 || !strings.Contains(stdout, "reloads: 1 applied, 0 failed") {
		t.Errorf("want two versions of pick.lua deciding and one reload:\n%s", stdout)
	}
	if !strings.Contains(stderr, "reloaded") || !strings.Contains(stderr, "pick.lua v2 in service; would change 1 of the last 1 decisions") {
		t.Errorf("the reload is not logged, with what the reload gate found:\n%s", stderr)
	}
}

// TestRunWatchRefusesAVersionThatFails: under --watch, a script that
// compiles but fails on the channel's recent decisions is refused; the
// activities keep going to the last good version.
func TestRunWatchRefusesAVersionThatFails(t *testing.T) {
	conf := runConfig(t, "{}")
	script := filepath.Join(filepath.Dir(conf), "pick.lua")
	var log syncBuffer
	stdin, n, sig, wait := startRunTo(t, &log, "-c", conf, "--requests", "-", "--watch")
	send := func(wf string) {
		fmt.Fprintf(stdin, `{"channel": "prod/email", "workflow_id": %q, "activity_type": "send"}`+"\n", wf)
	}
	send("wf-1")
	eventually(t, "first completed", func() bool { return n.Counters().Completed == 1 })
	if err := os.WriteFile(script, []byte("function route(r, c)\n  return c[5].id\nend\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sig.send(syscall.SIGHUP)
	eventually(t, "the refusal logged", func() bool { return strings.Contains(log.String(), "refused by the reload gate") })
	send("wf-2")
	stdin.Close()
	code, stdout, stderr := wait()
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"2 completed, 0 not completed", "reloads: 0 applied, 1 failed, 1 of them refused by the reload gate"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if want := "pick.lua:2: prod/email: refused by the reload gate: attempt to index a non-table object(nil) with key 'id'"; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
}

func TestRunUsage(t *testing.T) {
	conf := runConfig(t, "{}")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "--help"}, exitOK, "Usage: dispatch run"},
		{[]string{"run", "--help"}, exitOK, fmt.Sprintf("max_backlog (how many may wait; default %d", engine.DefaultMaxBacklog)},
		{[]string{"run", "--help"}, exitOK, "when_full (wait, the default, or fail"},
		{[]string{"run", "--help"}, exitOK, `"schedule_to_start": "5s"`},
		{[]string{"run", "--help"}, exitOK, "its channel's backlog was full (max_backlog)"},
		{[]string{"run", "--config", filepath.Join(t.TempDir(), "none.yaml")}, exitError, "cannot read config"},
		{[]string{"run", "-c", conf, "--concurrency", "0"}, exitUsage, "--concurrency 0"},
		{[]string{"run", "-c", conf, "--fsync", "sometimes"}, exitUsage, "want batch, interval or never"},
		{[]string{"run", "-c", conf, "--poll", "1s"}, exitUsage, "--poll needs --watch"},
		{[]string{"run", "-c", conf, "--requests", filepath.Join(t.TempDir(), "nope.jsonl")}, exitError, "no such file"},
		{[]string{"run", "-c", conf, "--requests", t.TempDir()}, exitError, "is a directory; want a JSONL file, a pipe or - for stdin"},
		{[]string{"run", "-c", conf, "--drain-timeout", "0s"}, exitUsage, "--drain-timeout 0s: want a positive duration"},
		{[]string{"run", "-c", filepath.Join(t.TempDir(), "nope.yaml")}, exitError, "cannot read config"},
	} {
		code, stdout, stderr := runCLI(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
			t.Errorf("%v: exit %d, output %q; want exit %d and %q", tc.args, code, stdout+stderr, tc.code, tc.want)
		}
	}
}

func TestRunJournal(t *testing.T) {
	conf := runConfig2(t, "{exit_rate: 0.2, restart_after: 1ms}", "{}")
	j := filepath.Join(t.TempDir(), "journal.jsonl")
	code, stdout, stderr := runCLI(t, "", "run", "-c", conf, "--sample", "50", "--journal", j, "--fsync", "never")
	if code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "", "replay", "--journal", j)
	if code != exitOK || !strings.Contains(stdout, "100 conversations") {
		t.Fatalf("replay of the run's journal: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestRunInterruptedWaitingForAPipeWriter: a named pipe as --requests waits
// for a writer; an interrupt ends the wait, exit 130.
func TestRunInterruptedWaitingForAPipeWriter(t *testing.T) {
	conf := runConfig(t, "{}")
	fifo := filepath.Join(t.TempDir(), "requests.fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sig := &fakeSignals{}
	var stdout, stderr syncBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, notify: sig.notify, stopNotify: sig.stop}
	code := make(chan int, 1)
	go func() { code <- runEnv([]string{"run", "-c", conf, "--requests", fifo}, e) }()
	eventually(t, "the wait said", func() bool { return strings.Contains(stderr.String(), "waiting for a writer to open the named pipe") })
	sig.send(os.Interrupt)
	select {
	case c := <-code:
		if c != 130 || !strings.Contains(stderr.String(), "interrupted by SIGINT while waiting for a writer to open "+fifo) {
			t.Errorf("exit %d\nstderr:\n%s", c, stderr.String())
		}
	case <-time.After(20 * time.Second): // a hang guard, not a timing
		t.Fatalf("the run did not end\n%s", stderr.String())
	}
	// Let the abandoned open return, as a writer would.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
}
