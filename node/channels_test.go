package node_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/node"
)

// Channels shows each channel's router in service and when it came in,
// its workers with their load, and its backlog; a swap shows at once.
func TestChannels(t *testing.T) {
	scripts := map[string]string{
		"conf/one.lua": `function route(r, c) return "w1" end`,
		"conf/two.lua": `function route(r, c) return "w2" end`,
	}
	base := `version: 1
channels:
  - namespace: prod
    task_queue: keep
    routing: {lua: %s}
    max_backlog: 7
    workers: [{id: w1, max_in_flight: 2, tags: [eu]}, {id: w2}]
`
	cfg1 := parse(t, strings.Replace(base, "%s", "one.lua", 1), scripts)
	n := start(t, cfg1, nil)
	ctx := context.Background()
	got := n.Channels(ctx)
	if len(got) != 1 || got[0].Channel.Short() != "prod/keep" {
		t.Fatalf("channels %+v", got)
	}
	c := got[0]
	if c.Router.Lang != "lua" || c.Router.Hash == "" || !strings.HasSuffix(c.Router.Source, "one.lua") || c.RouterLoaded.IsZero() {
		t.Errorf("router %+v loaded %v", c.Router, c.RouterLoaded)
	}
	if len(c.Workers) != 2 || c.Workers[0].ID != "w1" || c.Workers[0].MaxInFlight != 2 || len(c.Workers[0].Tags) != 1 ||
		c.Workers[1].ID != "w2" {
		t.Errorf("workers %+v", c.Workers)
	}
	if c.Backlog != 0 || c.Policy.MaxBacklog != 7 {
		t.Errorf("backlog %d policy %+v", c.Backlog, c.Policy)
	}
	cfg2 := parse(t, strings.Replace(base, "%s", "two.lua", 1), scripts)
	if err := n.Apply(cfg2); err != nil {
		t.Fatal(err)
	}
	after, ok := n.Channel(ctx, c.Channel)
	if !ok || after.Router.Hash == c.Router.Hash || !strings.HasSuffix(after.Router.Source, "two.lua") ||
		after.RouterLoaded.Before(c.RouterLoaded) {
		t.Errorf("after the swap: %+v (before %+v)", after, c)
	}
	if _, ok := n.Channel(ctx, engine.ChannelName{}); ok {
		t.Error("a channel the config lacks was found")
	}
}

// countingRouter counts the decisions it passes on.
type countingRouter struct {
	next engine.Router
	n    *atomic.Int32
}

func (r countingRouter) Select(ctx context.Context, in engine.Selection) (engine.Decision, error) {
	r.n.Add(1)
	return r.next.Select(ctx, in)
}

// WrapRouter sees every decision, and the outcome says where it went.
func TestWrapRouterAndOutcome(t *testing.T) {
	cfg := parse(t, `version: 1
channels:
  - namespace: prod
    task_queue: q
    routing: `+leastLoaded+`
    workers: [{id: w1}]
`, nil)
	var calls atomic.Int32
	n, err := node.New(cfg, node.Options{Seed: 1, IDs: &engine.SequenceIDs{Prefix: "c"},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		WrapRouter: func(r engine.Router) engine.Router { return countingRouter{next: r, n: &calls} }})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	out, err := n.DispatchOutcome(context.Background(), "prod", request("q", "wf-1"))
	if err != nil {
		t.Fatal(err)
	}
	if out.WorkerID != "w1" || out.ConversationID != "c1" || out.Attempts != 1 || calls.Load() != 1 {
		t.Fatalf("outcome %+v after %d decisions", out, calls.Load())
	}
}
