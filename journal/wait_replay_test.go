package journal_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/router"
)

// TestReplayWaits: a journal with waits replays its outcomes, those that a
// wait ended included, with their sentinels; the decisions are the
// selections only; the summary counts the waits per channel.
func TestReplayWaits(t *testing.T) {
	raw := renumber(waitLines())
	ops := readWaits(t, waitLines())
	out := journal.Outcomes(ops, nil)
	if len(out) != 6 {
		t.Fatalf("%d outcomes, want 6: %+v", len(out), out)
	}
	for _, tc := range []struct {
		conv, worker, output string
		sentinel             error
		msg                  string
	}{
		{conv: "c1", worker: "w1", output: "sent"},
		{conv: "c2", worker: "w2", output: "sent"},
		{conv: "c3", sentinel: engine.ErrScheduleToStartTimeout, msg: "schedule-to-start timeout after 2s"},
		{conv: "c4", sentinel: engine.ErrScheduleToCloseTimeout, msg: "schedule-to-close timeout after 5s"},
		{conv: "c5", msg: "context canceled"},
		{conv: "c6", sentinel: engine.ErrScheduleToStartTimeout, msg: "schedule-to-start timeout after 2s"},
	} {
		i := slices.IndexFunc(out, func(o journal.Outcome) bool { return o.ConversationID == tc.conv })
		if i < 0 {
			t.Errorf("no outcome of %s", tc.conv)
			continue
		}
		o := out[i]
		if o.WorkerID != tc.worker || string(o.Result.Output.Data) != tc.output {
			t.Errorf("%s: worker %q, output %q; want %q, %q", tc.conv, o.WorkerID, o.Result.Output.Data, tc.worker, tc.output)
		}
		switch {
		case tc.msg == "" && o.Err != nil:
			t.Errorf("%s: error %v, want none", tc.conv, o.Err)
		case tc.msg != "" && (o.Err == nil || !strings.HasSuffix(o.Err.Error(), ": "+tc.msg)):
			t.Errorf("%s: error %v, want one ending %q", tc.conv, o.Err, tc.msg)
		case tc.sentinel != nil && !errors.Is(o.Err, tc.sentinel):
			t.Errorf("%s: error %v does not match %v", tc.conv, o.Err, tc.sentinel)
		}
		var de *engine.DispatchError
		if tc.msg != "" && (!errors.As(o.Err, &de) || de.WorkerID != "" || de.ConversationID != tc.conv) {
			t.Errorf("%s: error %#v, want a DispatchError of the conversation with no worker", tc.conv, o.Err)
		}
		if errors.Is(o.Err, engine.ErrNoWorkers) || (tc.sentinel != engine.ErrScheduleToStartTimeout && errors.Is(o.Err, engine.ErrScheduleToStartTimeout)) {
			t.Errorf("%s: error %v matches a sentinel it should not", tc.conv, o.Err)
		}
	}

	// The dispatches replay through the engine without a live call.
	live := nothingLive{t}
	d, err := engine.NewDispatcher(engine.Options{Pool: live, Router: live, Conversations: live,
		Recorder: journal.Recorder{Replay: journal.NewReplay(ops, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Dispatch(context.Background(), "prod", request("wf-1", "a"))
	if err != nil || string(res.Output.Data) != "sent" {
		t.Errorf("replay of c1: %+v, %v", res, err)
	}
	if _, err := d.Dispatch(context.Background(), "prod", request("wf-3", "c")); !errors.Is(err, engine.ErrScheduleToStartTimeout) {
		t.Errorf("replay of c3: %v, want the schedule-to-start timeout", err)
	}

	// Verify checks, replays and sums up.
	rep, err := journal.Verify(context.Background(), bytes.NewReader(raw))
	if err != nil || rep.Problems != 0 || len(rep.Unfinished) != 0 || rep.Summary.Total.Conversations != 6 {
		t.Fatalf("verify: %+v, %v (first problem %v)", rep, err, rep.First)
	}
	for _, s := range []journal.Summary{rep.Summary, journal.Summarize(ops, out)} {
		email := s.Channels["prod/email"]
		if email == nil {
			t.Fatalf("no prod/email in the summary: %+v", s)
		}
		if email.Waits != 6 || email.Waited.Count() != 2 || email.Selected != 4 {
			t.Errorf("prod/email: %d waits, %d waited, %d selections; want 6, 2, 4", email.Waits, email.Waited.Count(), email.Selected)
		}
		if p50, p99 := email.Waited.Quantile(0.50), email.Waited.Quantile(0.99); p50 != 250*time.Millisecond || p99 != 1500*time.Millisecond {
			t.Errorf("prod/email waits p50 %s, p99 %s; want 250ms, 1.5s", p50, p99)
		}
		for _, tally := range []*journal.Tally{email, &s.Total} {
			if tally.ScheduleToStartTimeouts != 2 || tally.Timeouts != 3 || tally.OtherErrors != 1 || tally.Completed != 2 {
				t.Errorf("outcomes %+v: want 2 completed, 3 timeouts (2 schedule-to-start), 1 other error", *tally)
			}
		}
	}

	// What-if and validate see the selections only: a wait is no decision.
	var decided []int
	for dec := range journal.Decisions(journal.NewReader(bytes.NewReader(raw)).All()) {
		decided = append(decided, dec.Line)
		if dec.Line == 12 && (dec.Selection.Attempt != 2 || !slices.Equal(dec.Selection.Excluded, []string{"w1"}) ||
			dec.Selection.Request.WorkflowID != "wf-2" || dec.Chosen != "w2") {
			t.Errorf("the decision after c2's wait: %+v", dec)
		}
	}
	if want := []int{3, 8, 12, 26}; !slices.Equal(decided, want) {
		t.Errorf("decisions at lines %v, want %v", decided, want)
	}
	last := router.NewNative("last", func(in engine.Selection) string { return in.Candidates[len(in.Candidates)-1].ID() })
	wi := journal.WhatIf(context.Background(), journal.NewReader(bytes.NewReader(raw)).All(), channel(t), last, journal.WhatIfOptions{Keep: 5})
	if wi.Decisions != 4 || wi.Changed != 3 || wi.Errors != 0 {
		t.Errorf("what-if: %+v, want 4 decisions, 3 changed", wi)
	}
}

// TestDurations: the quantiles of the waits are the nearest rank's value,
// exact for values apart, within 1/128 of it for values close together,
// in memory that does not grow with their number.
func TestDurations(t *testing.T) {
	var d journal.Durations
	if d.Count() != 0 || d.Quantile(0.5) != 0 {
		t.Errorf("empty: count %d, p50 %s", d.Count(), d.Quantile(0.5))
	}
	for _, v := range []time.Duration{3 * time.Second, time.Second, 2 * time.Second} {
		d.Add(v)
	}
	if d.Count() != 3 || d.Quantile(0.5) != 2*time.Second || d.Quantile(0.99) != 3*time.Second || d.Quantile(0) != time.Second {
		t.Errorf("1s, 2s, 3s: count %d, p0 %s, p50 %s, p99 %s", d.Count(), d.Quantile(0), d.Quantile(0.5), d.Quantile(0.99))
	}
	d.Add(-time.Second) // a negative wait (a broken journal) counts as none
	if d.Quantile(0) != 0 {
		t.Errorf("a negative wait: p0 %s, want 0", d.Quantile(0))
	}

	// A million waits of 1µs to 1s: each quantile within 1/128 above the true one.
	var many journal.Durations
	var all []time.Duration
	for i := range 1_000_000 {
		v := time.Duration(1+(i*7919)%1_000_000) * time.Microsecond
		many.Add(v)
		all = append(all, v)
	}
	slices.Sort(all)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		exact := all[int(q*float64(len(all))+0.5)-1]
		got := many.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/128 {
			t.Errorf("p%g = %s, the exact one is %s", 100*q, got, exact)
		}
	}
	// 128 buckets at most per power of two: 21 of them from 1µs to 1s.
	if n := journal.DurationsBuckets(&many); n > 22*128 {
		t.Errorf("%d buckets for values from 1µs to 1s", n)
	}
}
