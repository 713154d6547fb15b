package node

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
)

// TestFleetOffersOneWorkerPerID: the fleet offers the simulated workers and
// the remote ones (here a second local pool, which is a Remote), but not a
// remote worker with a simulated one's id, and counts each id once as a
// member.
func TestFleetOffersOneWorkerPerID(t *testing.T) {
	ch, err := engine.DispatchChannel("prod", "email")
	if err != nil {
		t.Fatal(err)
	}
	sim, rem := local.NewPool(), local.NewPool()
	for _, p := range []*local.Pool{sim, rem} {
		t.Cleanup(func() { _ = p.Close(context.Background()) })
	}
	echo := func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(req.Input)
	}
	var simW *local.Worker
	for _, w := range []struct {
		pool *local.Pool
		id   string
	}{{sim, "w"}, {rem, "w"}, {rem, "r"}} {
		started, err := w.pool.Start(ch, local.WorkerConfig{ID: w.id, Handler: echo})
		if err != nil {
			t.Fatal(err)
		}
		if w.pool == sim {
			simW = started
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	f := newFleet(sim, rem, stop, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ws, err := f.Workers(context.Background(), ch, engine.ActivityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.ID())
	}
	if !slices.Equal(ids, []string{"w", "r"}) || ws[0].Participant != any(simW) {
		t.Errorf("offered %v (w the simulated one: %v), want the simulated w, then the remote r", ids, ws[0].Participant == any(simW))
	}
	if m := f.Members(ch); !slices.Equal(m, []string{"w", "r"}) {
		t.Errorf("members %v, want [w r]", m)
	}
}
