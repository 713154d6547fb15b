package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
)

// scriptedPool answers the n-th Workers call with the n-th snapshot (the
// last one from then on): membership that changes between attempts.
type scriptedPool struct {
	mu        sync.Mutex
	snapshots [][]string
	calls     int
}

func (p *scriptedPool) Workers(context.Context, engine.ChannelName, engine.ActivityRequest) ([]engine.Worker, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := p.snapshots[min(p.calls, len(p.snapshots)-1)]
	p.calls++
	ws := make([]engine.Worker, len(ids))
	for i, id := range ids {
		ws[i] = engine.Worker{State: engine.ConsumerStateView{ID: id, MaxInFlight: 1}}
	}
	return ws, nil
}

// exitingConversations open conversations whose every linked worker exits
// before it answers.
type exitingConversations struct{}

func (exitingConversations) Open(context.Context, string, engine.ChannelName, string) (engine.Conversation, error) {
	return &exitingConversation{}, nil
}

type exitingConversation struct{ worker string }

func (c *exitingConversation) Link(_ context.Context, w engine.Worker) error {
	c.worker = w.ID()
	return nil
}
func (c *exitingConversation) Send(context.Context, engine.DispatchRequest) error { return nil }
func (c *exitingConversation) Receive(context.Context) (engine.Event, error) {
	return engine.Event{Kind: engine.EventWorkerExited, WorkerID: c.worker, Message: "killed"}, nil
}
func (c *exitingConversation) Close() error { return nil }

// firstRouter chooses the first candidate on attempts up to upTo, and none
// after.
type firstRouter struct {
	upTo    int
	version engine.RouterVersion
}

func (r firstRouter) Select(_ context.Context, in engine.Selection) (engine.Decision, error) {
	if in.Attempt > r.upTo {
		return engine.Decision{Version: r.version}, nil
	}
	return engine.Decision{WorkerID: in.Candidates[0].ID(), Version: r.version}, nil
}

// TestNoWorkersSaysWhatHappened checks that NoWorkersAvailable tells an
// empty channel, a channel whose every subscriber is excluded, and a router
// that chose none apart, with counts that agree with the ids listed.
func TestNoWorkersSaysWhatHappened(t *testing.T) {
	script := engine.RouterVersion{Lang: "lua", Source: "route.lua", Hash: "sha256:ab12"}
	for _, tc := range []struct {
		name      string
		snapshots [][]string
		router    firstRouter
		want      string
	}{
		{"nobody subscribed", [][]string{{}}, firstRouter{upTo: 99},
			"NoWorkersAvailable: no workers subscribed"},
		{"the only worker exited and left", [][]string{{"w1"}, {}}, firstRouter{upTo: 99},
			"NoWorkersAvailable: no workers subscribed; also excluded, no longer subscribed: w1"},
		{"every subscriber exited", [][]string{{"w1", "w2"}, {"w2", "w1"}, {"w1", "w2"}}, firstRouter{upTo: 99},
			"NoWorkersAvailable: all 2 subscribed workers are excluded (w1, w2)"},
		// w3, w1 and w2 exit in turn; w1 comes back alone.
		{"one of three came back", [][]string{{"w3", "w1", "w2"}, {"w1", "w2"}, {"w2"}, {"w1"}}, firstRouter{upTo: 99},
			"NoWorkersAvailable: the 1 subscribed worker is excluded (w1); also excluded, no longer subscribed: w3, w2"},
		{"the script chose none", [][]string{{"a", "b", "c"}}, firstRouter{version: script},
			"NoWorkersAvailable: the script lua route.lua sha256:ab12 chose none of 3 candidates (a, b, c)"},
		{"a Go router chose none", [][]string{{"a"}}, firstRouter{version: engine.RouterVersion{Lang: "go", Source: "least-loaded"}},
			"NoWorkersAvailable: the router go least-loaded chose none of 1 candidate (a)"},
		{"the script chose none after an exit", [][]string{{"a", "b", "c"}}, firstRouter{upTo: 1, version: script},
			"NoWorkersAvailable: the script lua route.lua sha256:ab12 chose none of 2 candidates (b, c)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := engine.NewDispatcher(engine.Options{Pool: &scriptedPool{snapshots: tc.snapshots},
				Router: tc.router, Conversations: exitingConversations{}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.Dispatch(context.Background(), "prod", engine.ActivityRequest{WorkflowID: "wf-1", TaskQueue: "email"})
			if !errors.Is(err, engine.ErrNoWorkers) {
				t.Fatalf("err = %v, want ErrNoWorkers", err)
			}
			var de *engine.DispatchError
			if !errors.As(err, &de) {
				t.Fatalf("err = %T, want a *DispatchError", err)
			}
			if got := de.Err.Error(); got != tc.want {
				t.Errorf("cause = %q\nwant    %q", got, tc.want)
			}
		})
	}
}

// TestNoWorkersListsAreBounded checks that a script choosing none of many
// candidates names a few of them and counts the rest, so that the message
// (and the journal line that keeps it) stays short.
func TestNoWorkersListsAreBounded(t *testing.T) {
	var ids []string
	for i := range 100 {
		ids = append(ids, "w"+string(rune('a'+i%26))+strings.Repeat("x", i/26))
	}
	d, err := engine.NewDispatcher(engine.Options{Pool: &scriptedPool{snapshots: [][]string{ids}},
		Router: firstRouter{}, Conversations: exitingConversations{}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Dispatch(context.Background(), "prod", engine.ActivityRequest{WorkflowID: "wf-1", TaskQueue: "email"})
	want := "chose none of 100 candidates (" + strings.Join(ids[:10], ", ") + " and 90 more)"
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("err = %v\nwant one ending %q", err, want)
	}
}

// sharedPool hands every call the same slice, as a pool that keeps its
// snapshot may: the contract lets it, since the dispatcher does not change
// the slice (a re-route once dropped its excluded workers from it in
// place, which would have corrupted this pool's list).
type sharedPool struct{ ws []engine.Worker }

func (p *sharedPool) Workers(context.Context, engine.ChannelName, engine.ActivityRequest) ([]engine.Worker, error) {
	return p.ws, nil
}

func (p *sharedPool) Members(engine.ChannelName) []string {
	ids := make([]string, len(p.ws))
	for i, w := range p.ws {
		ids[i] = w.ID()
	}
	return ids
}

func TestRerouteLeavesThePoolsSliceAlone(t *testing.T) {
	pool := &sharedPool{ws: []engine.Worker{
		{State: engine.ConsumerStateView{ID: "w1", MaxInFlight: 1}},
		{State: engine.ConsumerStateView{ID: "w2", MaxInFlight: 1}},
		{State: engine.ConsumerStateView{ID: "w3", MaxInFlight: 1}},
	}}
	d, err := engine.NewDispatcher(engine.Options{Pool: pool, Router: firstRouter{upTo: 3}, Conversations: exitingConversations{}})
	if err != nil {
		t.Fatal(err)
	}
	// Every worker exits on it: three attempts, each after an exclusion.
	if _, err := d.Dispatch(context.Background(), "prod", engine.ActivityRequest{WorkflowID: "wf-1", TaskQueue: "email"}); !errors.Is(err, engine.ErrNoWorkers) {
		t.Fatalf("err = %v, want no workers", err)
	}
	if got := pool.Members(engine.ChannelName{}); !slices.Equal(got, []string{"w1", "w2", "w3"}) {
		t.Errorf("the pool's slice became %q", got)
	}
}
