package router_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// policy is one routing policy written three ways: in Go with the reference
// helpers, in Lua and in expr. The conformance test requires the three to
// choose the same worker on every snapshot.
type policy struct {
	name   string
	native func(in engine.Selection) string
	lua    []string // variants: with helpers, plain loops, …
	expr   []string
}

func nativeViews(in engine.Selection) []engine.ConsumerStateView {
	out := make([]engine.ConsumerStateView, len(in.Candidates))
	for i, w := range in.Candidates {
		out[i] = w.State
	}
	return out
}

func pick(vs []engine.ConsumerStateView, i int) string {
	if i < 0 {
		return ""
	}
	return vs[i].ID
}

var policies = []policy{
	{
		name: "least loaded",
		native: func(in engine.Selection) string {
			vs := nativeViews(in)
			return pick(vs, router.LeastLoadedIndex(vs))
		},
		lua: []string{
			`function route(r, c) return dispatch.least_loaded(c) end`,
			`function route(r, c)
  local best
  for _, w in ipairs(c) do
    if best == nil or (w.in_flight + w.buffer_depth) * math.max(best.max_in_flight, 1)
        < (best.in_flight + best.buffer_depth) * math.max(w.max_in_flight, 1) then
      best = w
    end
  end
  return best and best.id
end`,
		},
		expr: []string{
			`leastLoaded(candidates)`,
			`len(candidates) == 0 ? nil : reduce(candidates,
  (#.in_flight + #.buffer_depth) * max(#acc.max_in_flight, 1) < (#acc.in_flight + #acc.buffer_depth) * max(#.max_in_flight, 1) ? # : #acc,
  candidates[0]).id`,
		},
	},
	{
		name: "affinity",
		native: func(in engine.Selection) string {
			vs := router.WithTag(nativeViews(in), "gpu")
			return pick(vs, router.LeastLoadedIndex(vs))
		},
		lua: []string{
			`function route(r, c) return dispatch.least_loaded(dispatch.with_tag(c, "gpu")) end`,
			`function route(r, c) return dispatch.least_loaded(c, "gpu") end`,
			`function route(r, c)
  local gpu = {}
  for _, w in ipairs(c) do if w:has_tag("gpu") then gpu[#gpu + 1] = w end end
  return dispatch.least_loaded(gpu)
end`,
		},
		expr: []string{
			`leastLoaded(withTag(candidates, "gpu"))`,
			`leastLoaded(candidates, "gpu")`,
			`leastLoaded(filter(candidates, "gpu" in .tags))`,
		},
	},
	{
		name: "sticky",
		native: func(in engine.Selection) string {
			vs := nativeViews(in)
			return pick(vs, router.RendezvousIndex(vs, in.WorkflowID))
		},
		lua:  []string{`function route(r, c) return dispatch.rendezvous(c, r.workflow_id) end`},
		expr: []string{`rendezvous(candidates, request.workflow_id)`},
	},
	{
		name: "p2c",
		native: func(in engine.Selection) string {
			vs := nativeViews(in)
			return pick(vs, router.P2CIndex(vs, router.NewRand(in.ConversationID, in.Attempt)))
		},
		lua:  []string{`function route(r, c) return dispatch.p2c(c) end`},
		expr: []string{`p2c(candidates)`},
	},
	{
		name: "canary",
		native: func(in engine.Selection) string {
			vs := nativeViews(in)
			if router.NewRand(in.ConversationID, in.Attempt).Float64() < 0.3 {
				canary := router.WithTag(vs, "canary")
				if i := router.LeastLoadedIndex(canary); i >= 0 {
					return canary[i].ID
				}
			}
			return pick(vs, router.LeastLoadedIndex(vs))
		},
		lua: []string{`function route(r, c)
  if dispatch.random() < 0.3 then
    local id = dispatch.least_loaded(dispatch.with_tag(c, "canary"))
    if id then return id end
  end
  return dispatch.least_loaded(c)
end`, `function route(r, c)
  if math.random() < 0.3 then
    return dispatch.least_loaded(dispatch.with_tag(c, "canary")) or dispatch.least_loaded(c)
  end
  return dispatch.least_loaded(c)
end`},
		expr: []string{`random() < 0.3 ? (leastLoaded(withTag(candidates, "canary")) ?? leastLoaded(candidates)) : leastLoaded(candidates)`},
	},
}

var tagPool = []string{"eu", "us", "gpu", "canary"}

// randomSelection builds a snapshot of up to 12 candidates.
func randomSelection(t testing.TB, rng *rand.Rand) engine.Selection {
	n := rng.IntN(13)
	in := selection(t)
	in.WorkflowID = fmt.Sprintf("wf-%d", rng.IntN(1000))
	in.ConversationID = fmt.Sprintf("c-%d", rng.Uint64())
	in.Attempt = 1 + rng.IntN(3)
	for i := range n {
		var tags []string
		for _, tag := range tagPool {
			if rng.IntN(3) == 0 {
				tags = append(tags, tag)
			}
		}
		max := 1 + rng.IntN(6)
		in.Candidates = append(in.Candidates, worker(fmt.Sprintf("w%d", i+1), rng.IntN(max+1), max, rng.IntN(5), tags...))
	}
	if rng.IntN(2) == 0 {
		in.Excluded = []string{"w0"}
	}
	return in
}

func TestPoliciesAgreeAcrossLanguages(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const cases = 400
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			var scripts []*router.Script
			for _, src := range p.lua {
				scripts = append(scripts, router.NewScript(mustProgram(t, router.Lua, src), "policy.lua", time.Second))
			}
			for _, src := range p.expr {
				scripts = append(scripts, router.NewScript(mustProgram(t, router.Expr, src), "policy.expr", time.Second))
			}
			chosen := map[string]bool{}
			for range cases {
				in := randomSelection(t, rng)
				want := p.native(in)
				chosen[want] = true
				for i, s := range scripts {
					d, err := s.Select(context.Background(), in)
					if err != nil {
						t.Fatalf("variant %d (%s): %v", i, s.Version().Lang, err)
					}
					if d.WorkerID != want {
						t.Fatalf("variant %d (%s) chose %q, native %q, on %+v", i, s.Version().Lang, d.WorkerID, want, in.Candidates)
					}
				}
			}
			if len(chosen) < 3 {
				t.Errorf("the snapshots exercised only %d distinct choices", len(chosen))
			}
		})
	}
}
