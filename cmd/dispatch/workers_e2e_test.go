package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/router"
)

// The kill test's load: activities, dispatched this many at a time; every
// failEvery-th one is of type "fail", which the program fails itself.
const (
	e2eActivities  = 5000
	e2eConcurrency = 64
	e2eFailEvery   = 10
	e2eKillAfter   = 500 // completed dispatches before the kill
)

// TestWorkerProcessesSurviveKill9 runs three `dispatch worker --serve`
// processes on an embedded broker, dispatches 5,000 activities through
// them, 64 at a time, and kills one with SIGKILL once 500 have completed.
// The victim answers its first 100 activities and then holds every one it
// gets, so that it is full (8 in flight) when it dies. Then:
//
//   - every dispatch returned what its activity did: completed with its
//     input as output, or failed "asked to fail"; none lost, none hung;
//   - each of the victim's activities in flight was re-routed: the journal
//     has its worker_exited, then a worker_selected of another worker;
//   - every conversation was opened once and closed once;
//   - the journal passes the checker and every dispatch replays.
func TestWorkerProcessesSurviveKill9(t *testing.T) {
	testWorkersKill9(t, rigOpts{})
}

func testWorkersKill9(t *testing.T, o rigOpts) {
	r := newRig(t, "prod", "e2e", o)
	jpath := filepath.Join(t.TempDir(), "journal.jsonl")
	jw, _, err := journal.Open(jpath, journal.Options{Fsync: journal.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = jw.Close() })
	d, err := engine.NewDispatcher(engine.Options{Pool: r.tr, Conversations: r.tr, Capacity: r.tr,
		Router: router.NewNative("least-loaded", router.LeastLoaded), Recorder: journal.Recorder{Writer: jw}})
	if err != nil {
		t.Fatal(err)
	}

	const victimMax = 8
	w1 := r.startWorker(t, "w1", "--max-in-flight", "16", "--serve", "--", testProgramName, "serve")
	w2 := r.startWorker(t, "w2", "--max-in-flight", "16", "--serve", "--", testProgramName, "serve")
	victim := r.startWorker(t, "w3", "--max-in-flight", strconv.Itoa(victimMax), "--serve", "--", testProgramName, "serve", "100")
	r.waitRegistered(t, "w1", "w2", "w3")

	// The kill: once enough completed and the victim is full (it holds
	// victimMax activities), by whichever dispatch sees both first.
	var completed atomic.Int64
	var killOnce sync.Once
	killed := make(chan struct{})
	maybeKill := func() {
		if completed.Load() < e2eKillAfter {
			return
		}
		select {
		case <-killed:
			return
		default:
		}
		if st, ok := r.live(t)["w3"]; !ok || st.InFlight < victimMax {
			return
		}
		killOnce.Do(func() {
			_ = victim.cmd.Process.Signal(syscall.SIGKILL)
			close(killed)
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*guard)
	defer cancel()
	type outcome struct {
		res engine.ActivityResult
		err error
	}
	out := make([]outcome, e2eActivities)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range e2eConcurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= e2eActivities {
					return
				}
				res, err := d.Dispatch(ctx, "prod", e2eRequest(i))
				out[i] = outcome{res, err}
				if err == nil {
					completed.Add(1)
				}
				maybeKill()
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("dispatches hung (the guard of %s ran out); the victim's stderr:\n%s", 2*guard, victim.stderr)
	}
	select {
	case <-killed:
	default:
		t.Fatalf("the victim was never killed: it never held %d activities after %d completed", victimMax, e2eKillAfter)
	}
	if code := victim.wait(t); code != -1 {
		t.Errorf("the victim exited with %d, not killed by SIGKILL", code)
	}

	// Every dispatch returned what its activity did.
	var failed int
	for i, o := range out {
		req := e2eRequest(i)
		switch {
		case req.ActivityType == "fail":
			failed++
			if !errors.Is(o.err, engine.ErrActivityFailed) || !strings.Contains(o.err.Error(), "asked to fail") {
				t.Errorf("activity %d (fail): %v", i, o.err)
			}
		case o.err != nil:
			t.Errorf("activity %d: %v", i, o.err)
		case o.res.Status != engine.StatusCompleted || string(o.res.Output.Data) != string(req.Input.Data):
			t.Errorf("activity %d: %s %q, want completed %q", i, o.res.Status, o.res.Output.Data, req.Input.Data)
		}
	}

	if st := r.tr.Stats(); st.Exits != 1 || st.Refused() != 0 {
		t.Errorf("transport: %d exits (want 1, the victim), %d messages refused (want 0): %+v", st.Exits, st.Refused(), st)
	}

	// The other workers drain and exit 0.
	for _, w := range []*proc{w1, w2} {
		w.signal(t, syscall.SIGTERM)
		if code := w.wait(t); code != 0 {
			t.Errorf("worker %s exited with %d after SIGTERM; its stderr:\n%s", w.id, code, w.stderr)
		}
	}
	if err := jw.Close(); err != nil {
		t.Fatal(err)
	}

	checkKillJournal(t, jpath, "w3", victimMax, failed)
}

// e2eRequest is the i-th activity of the kill test.
func e2eRequest(i int) engine.ActivityRequest {
	typ := "echo"
	if i%e2eFailEvery == 3 {
		typ = "fail"
	}
	return engine.ActivityRequest{WorkflowID: "wf-" + strconv.Itoa(i), ActivityType: typ, TaskQueue: "e2e",
		Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"n":` + strconv.Itoa(i) + `}`)}}
}

// checkKillJournal reads the kill test's journal: every conversation
// opened and closed once; exactly exits worker_exited of victim, each
// followed in its conversation by the selection of another worker; the
// checker finds nothing and every dispatch replays.
func checkKillJournal(t *testing.T, path, victim string, exits, failed int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops, truncated, err := journal.ReadAll(f)
	if err != nil || truncated != 0 {
		t.Fatalf("read the journal: %v (truncated line %d)", err, truncated)
	}
	opened, closed := map[string]int{}, map[string]int{}
	exitedAt := map[string]bool{} // conversations whose attempt on victim ended in its exit
	rerouted := map[string]bool{} // those of them selected another worker after
	var last engine.Operation     // the last selection
	for _, op := range ops {
		id := op.ConversationID
		if op.Kind == engine.OpWorkerSelected {
			last = op
		}
		switch op.Kind {
		case engine.OpConversationOpened:
			opened[id]++
		case engine.OpConversationClosed:
			closed[id]++
		case engine.OpWorkerExited:
			if op.WorkerID != victim {
				t.Errorf("seq %d: worker %s exited; only %s was killed", op.Seq, op.WorkerID, victim)
			}
			exitedAt[id] = true
		case engine.OpWorkerSelected:
			if exitedAt[id] && op.WorkerID != victim {
				rerouted[id] = true
			}
		}
	}
	if len(opened) != e2eActivities {
		t.Errorf("%d conversations opened, want %d", len(opened), e2eActivities)
	}
	for id, n := range opened {
		if n != 1 || closed[id] != 1 {
			t.Errorf("conversation %s opened %d times, closed %d times", id, n, closed[id])
		}
	}
	for id := range closed {
		if opened[id] == 0 {
			t.Errorf("conversation %s closed, never opened", id)
		}
	}
	if len(exitedAt) != exits {
		t.Errorf("%d conversations saw %s exit, want %d (what it held)", len(exitedAt), victim, exits)
	}
	for id := range exitedAt {
		if !rerouted[id] {
			t.Errorf("conversation %s: %s exited and no other worker was selected after", id, victim)
		}
	}

	// What the transport observed of the processes reached the router:
	// by the last selection every candidate has answered, and some
	// answered "asked to fail".
	var someFailed bool
	for _, c := range last.Candidates {
		if c.LatencyEWMA <= 0 || c.LatencyPeakEWMA <= 0 {
			t.Errorf("seq %d: candidate %s has no observed latency: %+v", last.Seq, c.ID, c)
		}
		someFailed = someFailed || c.ErrorRate > 0
	}
	if !someFailed {
		t.Errorf("seq %d: no candidate has an error rate, although %d activities failed: %+v", last.Seq, failed, last.Candidates)
	}

	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	rep, err := journal.Verify(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problems > 0 || len(rep.Unfinished) > 0 {
		t.Fatalf("journal: %d problems, the first %v; %d unfinished", rep.Problems, rep.First, len(rep.Unfinished))
	}
	tot := rep.Summary.Total
	if tot.Conversations != e2eActivities || tot.Completed != e2eActivities-failed || tot.Failed != failed {
		t.Errorf("replayed %d conversations, %d completed, %d failed; want %d, %d, %d",
			tot.Conversations, tot.Completed, tot.Failed, e2eActivities, e2eActivities-failed, failed)
	}
	t.Logf("journal: %d operations, %d conversations, %d exits of %s, all re-routed", len(ops), tot.Conversations, len(exitedAt), victim)
}
