package node

import (
	"context"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// The operations of one conversation, as the engine records them, for
// feeding the node's figures directly (the engine does not wait in a
// backlog yet: these are the operations its contract says it records).
var (
	email = mustChannel("prod", "email")
	sms   = mustChannel("prod", "sms")
)

func mustChannel(ns, queue string) engine.ChannelName {
	ch, err := engine.DispatchChannel(ns, queue)
	if err != nil {
		panic(err)
	}
	return ch
}

func opened(conv string, ch engine.ChannelName) engine.Operation {
	return engine.Operation{Kind: engine.OpConversationOpened, ConversationID: conv, Channel: ch}
}

func waiting(conv string, ch engine.ChannelName) engine.Operation {
	return engine.Operation{Kind: engine.OpActivityWaiting, ConversationID: conv, Channel: ch,
		State: engine.StateScheduled, Message: "no free slot: all 2 candidates are full"}
}

func selected(conv string, ch engine.ChannelName, worker string, attempt int, waited time.Duration) engine.Operation {
	return engine.Operation{Kind: engine.OpWorkerSelected, ConversationID: conv, Channel: ch, WorkerID: worker,
		Attempt: attempt, Waited: waited}
}

func exited(conv string, ch engine.ChannelName, worker string) engine.Operation {
	return engine.Operation{Kind: engine.OpWorkerExited, ConversationID: conv, Channel: ch, WorkerID: worker}
}

func completed(conv string, ch engine.ChannelName, worker string) engine.Operation {
	return engine.Operation{Kind: engine.OpConversationClosed, ConversationID: conv, Channel: ch, WorkerID: worker,
		Result: engine.Completed(engine.Payload{})}
}

func closedWith(conv string, ch engine.ChannelName, msg string) engine.Operation {
	return engine.Operation{Kind: engine.OpConversationClosed, ConversationID: conv, Channel: ch, Message: msg}
}

// backlogFigures are the backlog's part of a channel's figures.
type backlogFigures struct {
	Backlog, BacklogPeak, Waited int
	Wait                         LatencySummary
	ScheduleToStartTimeouts      int
}

func figuresOf(c ChannelStats) backlogFigures {
	return backlogFigures{c.Backlog, c.BacklogPeak, c.Waited, c.Wait, c.ScheduleToStartTimeouts}
}

// TestStatsObserveTheBacklog: an activity is in its channel's backlog from
// its activity_waiting to the worker_selected or close that ends the wait;
// the peak is the most at once, the wait percentiles are of the waited of
// the selections that end a wait, and a close that says schedule-to-start
// timeout counts as one.
func TestStatsObserveTheBacklog(t *testing.T) {
	const s2sTimeout = "dispatch prod/email workflow wf-3: schedule-to-start timeout after 2s"
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		ops     []engine.Operation
		want    map[engine.ChannelName]backlogFigures
		backlog int64 // Counters.Backlog
	}{
		{"no wait", []engine.Operation{
			opened("c1", email), selected("c1", email, "w1", 1, 0), completed("c1", email, "w1"),
		}, map[engine.ChannelName]backlogFigures{email: {}}, 0},
		{"a wait that a selection ends", []engine.Operation{
			opened("c1", email), waiting("c1", email), selected("c1", email, "w1", 1, 30*ms), completed("c1", email, "w1"),
		}, map[engine.ChannelName]backlogFigures{email: {BacklogPeak: 1, Waited: 1, Wait: LatencySummary{30 * ms, 30 * ms}}}, 0},
		{"waiting now", []engine.Operation{
			opened("c1", email), waiting("c1", email), opened("c2", email), waiting("c2", email),
			opened("c3", email), selected("c3", email, "w1", 1, 0),
		}, map[engine.ChannelName]backlogFigures{email: {Backlog: 2, BacklogPeak: 2}}, 2},
		{"three wait: two are selected, one times out", []engine.Operation{
			opened("c1", email), opened("c2", email), opened("c3", email),
			waiting("c1", email), waiting("c2", email), waiting("c3", email),
			selected("c1", email, "w1", 1, 10*ms), selected("c2", email, "w1", 1, 20*ms),
			closedWith("c3", email, s2sTimeout),
			completed("c1", email, "w1"), completed("c2", email, "w1"),
		}, map[engine.ChannelName]backlogFigures{email: {BacklogPeak: 3, Waited: 2, Wait: LatencySummary{10 * ms, 20 * ms},
			ScheduleToStartTimeouts: 1}}, 0},
		{"a wait after a worker exited", []engine.Operation{
			opened("c1", email), selected("c1", email, "w1", 1, 0), exited("c1", email, "w1"),
			waiting("c1", email), selected("c1", email, "w2", 2, 5*ms), completed("c1", email, "w2"),
		}, map[engine.ChannelName]backlogFigures{email: {BacklogPeak: 1, Waited: 1, Wait: LatencySummary{5 * ms, 5 * ms}}}, 0},
		{"a wait recorded twice counts once", []engine.Operation{
			opened("c1", email), waiting("c1", email), waiting("c1", email),
		}, map[engine.ChannelName]backlogFigures{email: {Backlog: 1, BacklogPeak: 1}}, 1},
		{"a wait that a cancel ends", []engine.Operation{
			opened("c1", email), waiting("c1", email), closedWith("c1", email, "context canceled"),
		}, map[engine.ChannelName]backlogFigures{email: {BacklogPeak: 1}}, 0},
		{"a start-to-close timeout is not a schedule-to-start one", []engine.Operation{
			opened("c1", email), waiting("c1", email), selected("c1", email, "w1", 1, ms),
			closedWith("c1", email, "dispatch prod/email workflow wf-1: start-to-close timeout after 500ms"),
		}, map[engine.ChannelName]backlogFigures{email: {BacklogPeak: 1, Waited: 1, Wait: LatencySummary{ms, ms}}}, 0},
		{"the peak is the most at once, per channel", []engine.Operation{
			opened("c1", email), waiting("c1", email), opened("c2", email), waiting("c2", email),
			selected("c1", email, "w1", 1, ms), selected("c2", email, "w1", 1, ms), opened("c3", email), waiting("c3", email),
			opened("c4", sms), waiting("c4", sms),
		}, map[engine.ChannelName]backlogFigures{
			email: {Backlog: 1, BacklogPeak: 2, Waited: 2, Wait: LatencySummary{ms, ms}},
			sms:   {Backlog: 1, BacklogPeak: 1},
		}, 2},
		{"a wait of a conversation not opened is not counted", []engine.Operation{
			waiting("c9", email), selected("c9", email, "w1", 1, ms),
		}, map[engine.ChannelName]backlogFigures{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStats(nil)
			for _, op := range tc.ops {
				if err := s.Record(context.Background(), op); err != nil {
					t.Fatal(err)
				}
			}
			st := s.snapshot()
			got := map[engine.ChannelName]backlogFigures{}
			for _, c := range st.Channels {
				got[c.Channel] = figuresOf(c)
			}
			for ch, want := range tc.want {
				if got[ch] != want {
					t.Errorf("%s: %+v, want %+v", ch.Short(), got[ch], want)
				}
			}
			if st.Counters.Backlog != tc.backlog || s.counters().Backlog != tc.backlog {
				t.Errorf("Counters.Backlog %d, want %d", st.Counters.Backlog, tc.backlog)
			}
		})
	}
}
