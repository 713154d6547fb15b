package router_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

func cand(id string, inFlight, maxInFlight, buffer int) engine.Worker {
	return engine.Worker{State: engine.ConsumerStateView{ID: id, InFlight: inFlight, MaxInFlight: maxInFlight, BufferDepth: buffer}}
}

func TestLeastLoaded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cands    []engine.Worker
		excluded []string
		want     string
	}{
		{"none", nil, nil, ""},
		{"one", []engine.Worker{cand("a", 3, 4, 0)}, nil, "a"},
		{"fewer in flight", []engine.Worker{cand("a", 2, 4, 0), cand("b", 1, 4, 0)}, nil, "b"},
		{"buffer counts as load", []engine.Worker{cand("a", 1, 4, 2), cand("b", 2, 4, 0)}, nil, "b"},
		{"ratio, not count", []engine.Worker{cand("a", 2, 8, 0), cand("b", 1, 2, 0)}, nil, "a"},
		{"tie goes to pool order", []engine.Worker{cand("a", 1, 2, 0), cand("b", 2, 4, 0)}, nil, "a"},
		{"excluded skipped", []engine.Worker{cand("a", 0, 4, 0), cand("b", 3, 4, 0)}, []string{"a"}, "b"},
		{"all excluded", []engine.Worker{cand("a", 0, 4, 0)}, []string{"a"}, ""},
		{"zero max counts as one", []engine.Worker{cand("a", 1, 0, 0), cand("b", 1, 1, 0)}, nil, "a"},
		{"overloaded", []engine.Worker{cand("a", 4, 4, 9), cand("b", 4, 4, 8)}, nil, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := router.LeastLoaded(engine.Selection{Candidates: tc.cands, Excluded: tc.excluded})
			if got != tc.want {
				t.Errorf("LeastLoaded = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNativeSelect(t *testing.T) {
	r := router.NewNative("least-loaded", router.LeastLoaded)
	d, err := r.Select(context.Background(), engine.Selection{Candidates: []engine.Worker{cand("a", 0, 1, 0)}})
	if err != nil || d.WorkerID != "a" || d.Version != (engine.RouterVersion{Lang: "go", Source: "least-loaded"}) {
		t.Errorf("Select = %+v, %v", d, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Select(ctx, engine.Selection{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Select with a cancelled context = %v", err)
	}
}
