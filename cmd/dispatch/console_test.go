package main

import (
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/node"
)

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		c    node.Counters
		rate float64
		want string
	}{
		{node.Counters{}, 0, "dispatched 0  completed 0  not completed 0  re-routed 0  backlog 0  0/s"},
		{node.Counters{Dispatched: 500, Completed: 400, Failed: 3, Rerouted: 7, Backlog: 37}, 1234.4,
			"dispatched 500  completed 400  not completed 3  re-routed 7  backlog 37  1234/s"},
	} {
		if got := progressLine(tc.c, tc.rate); got != tc.want {
			t.Errorf("%+v:\n got %q\nwant %q", tc.c, got, tc.want)
		}
	}
}

// TestSummaryShowsTheBacklog: per channel, the waits a selection ended,
// their p50 and p99, the backlog's peak and the schedule-to-start
// timeouts, "-" for a percentile of no wait.
func TestSummaryShowsTheBacklog(t *testing.T) {
	email, _ := engine.DispatchChannel("prod", "email")
	sms, _ := engine.DispatchChannel("prod", "sms")
	ms := time.Millisecond
	s := node.Stats{
		Counters: node.Counters{Dispatched: 600, Completed: 590, Failed: 10},
		Channels: []node.ChannelStats{
			{Channel: email, Activities: 500, Completed: 490, Other: 10, Latency: node.LatencySummary{P50: 30 * ms, P99: 2 * time.Second},
				Waited: 452, Wait: node.LatencySummary{P50: 12 * ms, P99: 480 * ms}, BacklogPeak: 86, ScheduleToStartTimeouts: 10},
			{Channel: sms, Activities: 100, Completed: 100, Latency: node.LatencySummary{P50: ms, P99: 2 * ms}},
		},
		Elapsed: time.Second,
	}
	var out strings.Builder
	(&runner{}).summary(&out, s, nil)
	lines := strings.Split(out.String(), "\n")
	want := [][]string{
		{"channel", "activities", "completed", "failed", "other", "re-routes", "exits", "p50", "p99",
			"waited", "wait-p50", "wait-p99", "backlog-peak", "wait-timeouts"},
		{"prod/email", "500", "490", "0", "10", "0", "0", "30ms", "2s", "452", "12ms", "480ms", "86", "10"},
		{"prod/sms", "100", "100", "0", "0", "0", "0", "1ms", "2ms", "0", "-", "-", "0", "0"},
	}
	if len(lines) < 2+len(want) {
		t.Fatalf("summary:\n%s", out.String())
	}
	for i, w := range want {
		if got := strings.Fields(lines[2+i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d:\n got %q\nwant %q", 3+i, got, w)
		}
	}
}
