package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

// writeJournal records a few dispatches over in-process workers: one
// completes, one fails, one re-routes after a crash.
func writeJournal(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	w, _, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := engine.DispatchChannel("prod", "email")
	pool := local.NewPool()
	defer pool.Close(context.Background())
	crashes := 1
	pool.Start(ch, local.WorkerConfig{ID: "email-1", Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		if string(req.Input.Data) == "crash" && crashes > 0 {
			crashes--
			panic("boom")
		}
		if string(req.Input.Data) == "bad" {
			return engine.Failed("550")
		}
		return engine.Completed(engine.Payload{Data: []byte("ok")})
	}})
	pool.Start(ch, local.WorkerConfig{ID: "email-2", MaxInFlight: 2, Handler: func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(engine.Payload{Data: []byte("ok")})
	}})
	d, err := engine.NewDispatcher(engine.Options{Pool: pool, Router: router.NewNative("least-loaded", router.LeastLoaded),
		Conversations: pool, Recorder: journal.Recorder{Writer: w}, IDs: &engine.SequenceIDs{Prefix: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range []string{"a", "bad", "crash"} {
		d.Dispatch(context.Background(), "prod", engine.ActivityRequest{WorkflowID: "wf-" + in, ActivityType: "send",
			TaskQueue: "email", Input: engine.Payload{Data: []byte(in)}, StartToClose: time.Duration(i+1) * time.Second})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReplayCommand(t *testing.T) {
	path := writeJournal(t)
	code, stdout, stderr := runCLI(t, "", "replay", "--journal", path)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"consistent:", "3 conversations replayed with 0 live calls", "2 completed", "1 failed",
		"prod/email", "email-1", "email-2"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}

	// A torn last line is a warning; the rest still replays.
	raw, _ := os.ReadFile(path)
	torn := filepath.Join(t.TempDir(), "torn.jsonl")
	os.WriteFile(torn, append(raw, []byte(`{"seq":99,"kin`)...), 0o644)
	code, _, stderr = runCLI(t, "", "replay", "--journal", torn)
	if code != exitOK || !strings.Contains(stderr, "warning: the last line is truncated") {
		t.Errorf("torn tail: exit %d, stderr %q", code, stderr)
	}

	// A journal cut in the middle of a conversation (a crash) replays what
	// finished and warns about the rest.
	lines := strings.SplitAfter(string(raw), "\n")
	cut := filepath.Join(t.TempDir(), "cut.jsonl")
	os.WriteFile(cut, []byte(strings.Join(lines[:3], "")), 0o644)
	code, stdout, stderr = runCLI(t, "", "replay", "--journal", cut)
	if code != exitOK || !strings.Contains(stderr, cut+":1: warning: conversation c1 never closed") ||
		!strings.Contains(stdout, "0 conversations replayed") {
		t.Errorf("cut journal: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// Steps out of order are a broken journal.
	swapped := filepath.Join(t.TempDir(), "swapped.jsonl")
	os.WriteFile(swapped, []byte(lines[0]+lines[2]+lines[1]+strings.Join(lines[3:], "")), 0o644)
	code, _, stderr = runCLI(t, "", "replay", "--journal", swapped)
	if code != exitError || !strings.HasPrefix(stderr, swapped+":2: conversation c1: message_sent cannot follow conversation_opened") {
		t.Errorf("swapped steps: exit %d, stderr %q", code, stderr)
	}

	// Garbage in the middle is located.
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte(lines[0]+"{not json}\n"+lines[1]), 0o644)
	code, _, stderr = runCLI(t, "", "replay", "--journal", bad)
	if code != exitError || !strings.HasPrefix(stderr, bad+":2: ") {
		t.Errorf("garbage: exit %d, stderr %q", code, stderr)
	}
}

func TestReplayWhatIf(t *testing.T) {
	path := writeJournal(t)
	script := filepath.Join(t.TempDir(), "last.expr")
	os.WriteFile(script, []byte(`candidates[len(candidates)-1].id`), 0o644)
	code, stdout, stderr := runCLI(t, "", "replay", "--journal", path, "--what-if", script, "--channel", "prod/email")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "4 decisions on prod/email") || !strings.Contains(stdout, "would change 3 (75.0%)") ||
		!strings.Contains(stdout, "RECORDED") || !strings.Contains(stdout, "email-1") {
		t.Errorf("what-if output:\n%s", stdout)
	}
	same := "../../scripts/least_loaded.lua"
	code, stdout, _ = runCLI(t, "", "replay", "--journal", path, "--what-if", same, "--channel", "prod/email")
	if code != exitOK || !strings.Contains(stdout, "would change 0") {
		t.Errorf("same policy: exit %d\n%s", code, stdout)
	}
	for _, args := range [][]string{
		{"replay"},
		{"replay", "--journal", path, "--what-if", same},
	} {
		if code, _, _ := runCLI(t, "", args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, stderr := runCLI(t, "", "replay", "--journal", path, "--what-if", "x.py", "--channel", "prod/email"); code != exitUsage || !strings.Contains(stderr, ".lua or .expr") {
		t.Errorf("bad script: %d %s", code, stderr)
	}

	// A channel the journal has no decisions on is a mistake, not a pass.
	code, _, stderr = runCLI(t, "", "replay", "--journal", path, "--what-if", same, "--channel", "prod/nope")
	if code != exitError || !strings.Contains(stderr, "no routing decisions on prod/nope; the journal has decisions on prod/email (4)") {
		t.Errorf("unknown channel: exit %d, stderr %q", code, stderr)
	}

	// A script that fails on recorded traffic fails the what-if, its errors
	// on one line each in the table and the first one whole below it.
	broken := filepath.Join(t.TempDir(), "broken.lua")
	os.WriteFile(broken, []byte("function route(r, c)\n  local pick\n  return pick.id\nend\n"), 0o644) // fails when it runs
	code, stdout, stderr = runCLI(t, "", "replay", "--journal", path, "--what-if", broken, "--channel", "prod/email")
	if code != exitError || !strings.Contains(stdout, "would change 4 (100.0%), 4 of them errors") ||
		!strings.Contains(stderr, broken+": fails on 4 of 4 recorded decisions; the first error:\n"+broken+":3") {
		t.Errorf("broken script: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "\t") {
			t.Errorf("an error's source line broke the table: %q", line)
		}
	}

	// --timeout must be positive.
	if code, _, stderr := runCLI(t, "", "replay", "--journal", path, "--what-if", same, "--channel", "prod/email", "--timeout", "0s"); code != exitUsage || !strings.Contains(stderr, "want a positive duration") {
		t.Errorf("--timeout 0s: exit %d, stderr %q", code, stderr)
	}

	// A script that loops gets the --timeout deadline per decision, not more.
	loop := filepath.Join(t.TempDir(), "loop.lua")
	os.WriteFile(loop, []byte("function route(r, c)\n  while true do end\nend\n"), 0o644)
	code, _, stderr = runCLI(t, "", "replay", "--journal", path, "--what-if", loop, "--channel", "prod/email", "--timeout", "2ms")
	if code != exitError || !strings.Contains(stderr, "timed out after 2ms") {
		t.Errorf("looping script: exit %d, stderr %q", code, stderr)
	}

	// ... and is given up on after 5 timeouts, saying how far it got.
	long := filepath.Join(t.TempDir(), "long.jsonl")
	if code, _, stderr := runCLI(t, "", "run", "-c", shipped, "--sample", "8", "--journal", long, "--fsync", "never", "--nats-listen", "127.0.0.1:0"); code != exitOK {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	code, stdout, stderr = runCLI(t, "", "replay", "--journal", long, "--what-if", loop, "--channel", "prod/email", "--timeout", "1ms")
	// (8 activities, and a re-route or two when email-3 exits: 8 or more decisions)
	if code != exitError || !regexp.MustCompile(`: 5 of (8|9|1\d) decisions on prod/email;`).MatchString(stdout) ||
		!regexp.MustCompile(`stopped after 5 of (8|9|1\d) decisions: the script timed out on 5 of them`).MatchString(stderr) {
		t.Errorf("looping script on a longer journal: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
}
