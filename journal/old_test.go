package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
)

// TestOldJournalUnchanged: a journal written before the backlog (issue
// 12), with no activity_waiting and no waited in it, checks, replays, sums
// up and yields its decisions exactly as it did then. testdata/old.want is
// what the code of that time made of testdata/old.jsonl (a generated
// journal with answers, failures, an exit, timeouts and NoWorkersAvailable)
// and of its first 80 lines (a crash: conversations never closed). It is
// not rewritten by -update: a change here is a change of behaviour.
func TestOldJournalUnchanged(t *testing.T) {
	raw, err := os.ReadFile("testdata/old.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/old.want")
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(raw, []byte("\n"))
	got := describeJournal(t, "the whole journal", raw) + describeJournal(t, "its first 80 lines", bytes.Join(lines[:80], nil))
	if got != string(want) {
		gotLines, wantLines := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gotLines), len(wantLines)) {
			g, w := at(gotLines, i), at(wantLines, i)
			if g != w {
				t.Fatalf("testdata/old.want:%d differs:\n got %s\nwant %s", i+1, g, w)
			}
		}
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(nothing)"
}

// describeJournal tells in text what the journal package makes of raw:
// the check, Verify's report and summary, the outcomes, their replay and
// the decisions.
func describeJournal(t *testing.T, title string, raw []byte) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "== %s\n", title)
	ops, truncated, err := journal.ReadAll(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "read: %d operations, truncated %d\n", len(ops), truncated)
	for _, p := range check(ops) {
		fmt.Fprintf(&b, "check: %v (unfinished %v)\n", p, p.Unfinished())
	}

	rep, err := journal.Verify(context.Background(), bytes.NewReader(raw))
	fmt.Fprintf(&b, "verify: err %v, problems %d, first %q, truncated %d, unfinished %d\n",
		err, rep.Problems, errText(rep.First), rep.Truncated, len(rep.Unfinished))
	describeSummary(&b, "verify", rep.Summary)

	outcomes := journal.Outcomes(ops, nil)
	describeSummary(&b, "summarize", journal.Summarize(ops, outcomes))
	for _, o := range outcomes {
		fmt.Fprintf(&b, "outcome: line %d %s %s on %s (%s): worker %q, %s, err %q%s\n", o.Line, o.ConversationID,
			o.Request.WorkflowID, o.Channel.Short(), o.Request.ActivityType, o.WorkerID, resultSummary(o.Result), errText(o.Err), sentinels(o.Err))
	}

	// The outcomes replay, in order, through a dispatcher that makes no live call.
	live := nothingLive{t}
	d, err := engine.NewDispatcher(engine.Options{Pool: live, Router: live, Conversations: live,
		Recorder: journal.Recorder{Replay: journal.NewReplay(ops, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outcomes {
		res, err := d.Dispatch(context.Background(), o.Channel.Namespace(), o.Request)
		fmt.Fprintf(&b, "replayed: line %d: %s, err %q%s\n", o.Line, resultSummary(res), errText(err), sentinels(err))
	}

	for dec := range journal.Decisions(journal.NewReader(bytes.NewReader(raw)).All()) {
		in := dec.Selection
		ids := make([]string, len(in.Candidates))
		for i, c := range in.Candidates {
			ids[i] = fmt.Sprintf("%s(%d/%d+%d)", c.ID(), c.State.InFlight, c.State.MaxInFlight, c.State.BufferDepth)
		}
		fmt.Fprintf(&b, "decision: line %d %s %s attempt %d on %s (%s): chose %s of %s, excluded %v\n", dec.Line,
			in.ConversationID, in.WorkflowID, in.Attempt, in.Channel.Short(), in.Request.ActivityType, dec.Chosen,
			strings.Join(ids, " "), in.Excluded)
	}
	return b.String()
}

func describeSummary(b *strings.Builder, who string, s journal.Summary) {
	tally := func(t journal.Tally) string {
		return fmt.Sprintf("conversations %d completed %d failed %d no-workers %d timeouts %d other %d; selected %d answered %d answered-failed %d exits %d timed-out %d",
			t.Conversations, t.Completed, t.Failed, t.NoWorkers, t.Timeouts, t.OtherErrors,
			t.Selected, t.Answered, t.AnsweredFailed, t.Exits, t.TimedOut)
	}
	fmt.Fprintf(b, "%s: %d operations; total: %s\n", who, s.Operations, tally(s.Total))
	for _, k := range s.ChannelNames() {
		fmt.Fprintf(b, "%s: channel %s: %s\n", who, k, tally(*s.Channels[k]))
	}
	for _, k := range s.WorkerKeys() {
		fmt.Fprintf(b, "%s: worker %s %s: %s\n", who, k.Channel, k.Worker, tally(*s.Workers[k]))
	}
}

func resultSummary(r engine.ActivityResult) string {
	return fmt.Sprintf("%v/%s/%d bytes/%q", r.Status, r.Output.ContentType, len(r.Output.Data), r.Error)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// sentinels lists the engine's sentinels err matches.
func sentinels(err error) string {
	var out []string
	for _, s := range []error{engine.ErrNoWorkers, engine.ErrActivityFailed, engine.ErrStartToCloseTimeout,
		engine.ErrScheduleToCloseTimeout, engine.ErrScheduleToStartTimeout, engine.ErrBacklogFull, engine.ErrRouting, engine.ErrRecord, engine.ErrPanic, engine.ErrUnknownChannel,
		journal.ErrNonDeterminism} {
		if errors.Is(err, s) {
			out = append(out, s.Error())
		}
	}
	var de *engine.DispatchError
	if errors.As(err, &de) {
		out = append(out, fmt.Sprintf("DispatchError(worker %q, conversation %q)", de.WorkerID, de.ConversationID))
	}
	if len(out) == 0 {
		return ""
	}
	return " matching " + strings.Join(out, ", ")
}
