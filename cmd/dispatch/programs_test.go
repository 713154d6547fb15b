package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRunStartsWorkerPrograms: dispatch run starts a config's exec workers
// as dispatch worker processes on its embedded NATS server, and a channel
// mixes a simulated worker and a program: the script sends even workflows
// to the program (waiting for it to register) and odd ones to the
// simulated worker, and every activity completes where it was sent.
func TestRunStartsWorkerPrograms(t *testing.T) {
	conf := configFile(t, `version: 1
channels:
  - namespace: prod
    task_queue: mixed
    routing:
      lang: lua
      source: |
        function route(r, c)
          local n = tonumber(string.match(r.workflow_id, "%d+"))
          local want = (n % 2 == 0) and "prog" or "sim"
          for _, w in ipairs(c) do
            if w.id == want then return w.id end
          end
          return nil
        end
    workers:
      - {id: sim, max_in_flight: 2}
      - {id: prog, max_in_flight: 2, exec: [cat]}
`)
	var lines []string
	for i := 1; i <= 20; i++ {
		lines = append(lines, fmt.Sprintf(`{"channel":"prod/mixed","workflow_id":"wf-%d","activity_type":"echo","input":{"n":%d},"schedule_to_start":"20s"}`, i, i))
	}
	reqs := filepath.Join(filepath.Dir(conf), "requests.jsonl")
	writeTestFile(t, reqs, strings.Join(lines, "\n")+"\n")

	code, stdout, stderr := runCLI(t, "", "run", "-c", conf, "--requests", reqs, "--nats-listen", "127.0.0.1:0")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{`prod/mixed\s+prog\s+10\s+10\s`, `prod/mixed\s+sim\s+10\s+10\s`} {
		if !regexp.MustCompile(want).MatchString(stdout) {
			t.Errorf("summary lacks %s:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "NATS listening on nats://127.0.0.1:") {
		t.Errorf("stderr does not say where NATS listens:\n%s", stderr)
	}
}

// TestRunWithoutNATSRefusesPrograms: without a NATS server to start
// programs on (--nats pointing nowhere), the run fails at once, saying so.
func TestRunWithoutNATSRefusesPrograms(t *testing.T) {
	conf := configFile(t, `version: 1
channels:
  - namespace: prod
    task_queue: p
    routing: {lang: lua, source: "function route(r, c) return c[1] end"}
    workers:
      - {id: prog, exec: [cat]}
`)
	code, _, stderr := runCLI(t, "", "run", "-c", conf, "--sample", "1", "--nats", "nats://127.0.0.1:1")
	if code != exitError || !strings.Contains(stderr, "connect to NATS at nats://127.0.0.1:1") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

// configFile writes a config, dispatch.yaml, in a directory of its own and
// returns its path.
func configFile(t *testing.T, body string) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "dispatch.yaml")
	writeTestFile(t, conf, body)
	return conf
}

func writeTestFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunJoinsNATSFromTheConfig: the config's nats key starts the embedded
// server where it says, with no exec worker and no flag.
func TestRunJoinsNATSFromTheConfig(t *testing.T) {
	conf := configFile(t, `version: 1
nats: {listen: "127.0.0.1:0"}
channels:
  - namespace: prod
    task_queue: p
    routing: {lang: lua, source: "function route(r, c) return c[1] end"}
    workers:
      - {id: sim}
`)
	code, _, stderr := runCLI(t, "", "run", "-c", conf, "--sample", "3")
	if code != exitOK || !strings.Contains(stderr, "NATS listening on nats://127.0.0.1:") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

// TestLogLinesReadsPastALongLine: a worker program's stderr line longer
// than the log's bound is cut, and the lines after it are still read (a
// reader that stopped would kill the program with SIGPIPE).
func TestLogLinesReadsPastALongLine(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	in := strings.Repeat("x", 100_000) + "\ndispatch worker w: drained\nlast words"
	logLines(strings.NewReader(in), log)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3:\n%.300s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "[line cut]") || len(lines[0]) > maxLogLine+200 {
		t.Errorf("long line logged as %.200s… (%d bytes)", lines[0], len(lines[0]))
	}
	if !strings.Contains(lines[1], "level=INFO") || !strings.Contains(lines[1], "drained") {
		t.Errorf("worker line: %s", lines[1])
	}
	if !strings.Contains(lines[2], "last words") {
		t.Errorf("last line: %s", lines[2])
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:4222": true, ":4222": true, "localhost:0": true, "[::1]:4222": true, "127.1.2.3:1": true,
		"0.0.0.0:4222": false, "[::]:4222": false, "10.0.0.5:4222": false, "example.com:4222": false, "4222": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestRunWaitsForItsPrograms: the load starts once the exec workers have
// registered, so a channel that fails when full does not fail its first
// activities for want of a worker that is still starting.
func TestRunWaitsForItsPrograms(t *testing.T) {
	conf := configFile(t, `version: 1
channels:
  - namespace: prod
    task_queue: p
    when_full: fail
    routing: {lang: lua, source: "function route(r, c) return c[1] end"}
    workers:
      - {id: prog, max_in_flight: 5, exec: [cat]}
`)
	code, stdout, stderr := runCLI(t, "", "run", "-c", conf, "--sample", "5", "--concurrency", "5", "--nats-listen", "127.0.0.1:0")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestValidateWarnsOfProgramsNotFound: validate says, as a warning with
// the worker's place, when an exec worker's program cannot be run on this
// machine; the config is still valid (it may be meant for another).
func TestValidateWarnsOfProgramsNotFound(t *testing.T) {
	conf := configFile(t, `version: 1
channels:
  - namespace: prod
    task_queue: p
    routing: {lang: lua, source: "function route(r, c) return c[1] end"}
    workers:
      - {id: a, exec: [./nope.sh]}
      - {id: b, exec: [no-such-program-xyz]}
      - {id: c, exec: [cat]}
`)
	code, stdout, stderr := runCLI(t, "", "validate", "-c", conf)
	if code != exitOK || !strings.Contains(stdout, "ok: 1 channels, 0 local workers, 3 worker programs") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{conf + ":7:9: warning: worker a's program " + filepath.Join(filepath.Dir(conf), "nope.sh") + " cannot be run here",
		conf + ":8:9: warning: worker b's program no-such-program-xyz cannot be run here"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "worker c's") {
		t.Errorf("cat is in PATH:\n%s", stderr)
	}
}
