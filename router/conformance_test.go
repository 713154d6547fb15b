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
	{
		name: "p2c ewma",
		native: func(in engine.Selection) string {
			vs := nativeViews(in)
			return pick(vs, router.P2CEWMAIndex(vs, router.NewRand(in.ConversationID, in.Attempt)))
		},
		lua: []string{`function route(r, c) return dispatch.p2c_ewma(c) end`, `function route(r, c)
  local l = {}
  for _, w in ipairs(c) do l[#l + 1] = w end
  return dispatch.p2c_ewma(l)
end`},
		expr: []string{`p2cEwma(candidates)`, `p2cEwma(filter(candidates, true))`},
	},
	{
		name: "least latency",
		native: func(in engine.Selection) string {
			vs := nativeViews(in)
			return pick(vs, router.LeastLatencyIndex(vs))
		},
		lua: []string{`function route(r, c) return dispatch.least_latency(c) end`, `function route(r, c) return dispatch.least_latency(dispatch.healthy(c, 1)) end`,
			`function route(r, c) local x = {} return dispatch.least_latency(c) end`}, // gopher-lua
		expr: []string{`leastLatency(candidates)`, `leastLatency(healthy(candidates, 1))`,
			`let ids = map(candidates, #.id); leastLatency(candidates)`}, // the VM
	},
	{
		name: "outlier eject",
		native: func(in engine.Selection) string {
			vs := nativeViews(in)
			if h := router.Healthy(vs, 0.25); len(h) > 0 {
				vs = h
			}
			return pick(vs, router.LeastLoadedIndex(vs))
		},
		lua: []string{`function route(r, c)
  local h = dispatch.healthy(c, 0.25)
  if #h == 0 then h = c end
  return dispatch.least_loaded(h)
end`, `function route(r, c)
  local h = {}
  for _, w in ipairs(c) do if w.error_rate <= 0.25 then h[#h + 1] = w end end
  if #h == 0 then return dispatch.least_loaded(c) end
  return dispatch.least_loaded(h)
end`},
		expr: []string{`let h = healthy(candidates, 0.25); leastLoaded(len(h) > 0 ? h : candidates)`,
			`let h = filter(candidates, .error_rate <= 0.25); len(h) > 0 ? leastLoaded(h) : leastLoaded(candidates)`},
	},
	{
		// Every observed figure read in a loop, as a script of its own would.
		name: "observed score",
		native: func(in engine.Selection) string {
			best, bestScore := "", 0.0
			for _, w := range in.Candidates {
				s := w.State
				score := s.LatencyEWMA + s.LatencyPeakEWMA + s.ErrorRate + float64(s.Exits)
				if best == "" || score < bestScore {
					best, bestScore = s.ID, score
				}
			}
			return best
		},
		lua: []string{`function route(r, c)
  local best, bestScore
  for i = 1, #c do
    local w = c[i]
    local score = w.latency_ewma + w.latency_peak_ewma + w.error_rate + w.exits
    if best == nil or score < bestScore then best, bestScore = w, score end
  end
  return best and best.id
end`, `function route(r, c)
  local scores = {} -- a table constructor: gopher-lua runs this one, not the fast path
  for i, w in ipairs(c) do scores[i] = w.latency_ewma + w.latency_peak_ewma + w.error_rate + w.exits end
  local best
  for i = 1, #c do if best == nil or scores[i] < scores[best] then best = i end end
  return best and c[best].id
end`},
		expr: []string{`len(candidates) == 0 ? nil : reduce(candidates,
  #.latency_ewma + #.latency_peak_ewma + #.error_rate + #.exits < #acc.latency_ewma + #acc.latency_peak_ewma + #acc.error_rate + #acc.exits ? # : #acc,
  candidates[0]).id`, `let ids = map(candidates, #.id); // map: the VM runs this one, not the fast path
len(ids) == 0 ? nil : reduce(candidates,
  #.latency_ewma + #.latency_peak_ewma + #.error_rate + #.exits < #acc.latency_ewma + #acc.latency_peak_ewma + #acc.error_rate + #acc.exits ? # : #acc,
  candidates[0]).id`},
	},
}

var tagPool = []string{"eu", "us", "gpu", "canary"}

// observed gives w figures drawn from small sets, so that new workers (0),
// ties and the error-rate limit come up often.
func observed(rng *rand.Rand, w engine.Worker) engine.Worker {
	lat := []float64{0, 0, 0.002, 0.005, 0.020, 0.020, 0.5}
	w.State.LatencyEWMA = lat[rng.IntN(len(lat))]
	w.State.LatencyPeakEWMA = lat[rng.IntN(len(lat))]
	errs := []float64{0, 0, 0, 0.1, 0.25, 0.5, 1}
	w.State.ErrorRate = errs[rng.IntN(len(errs))]
	w.State.Exits = []int{0, 0, 0, 1, 3, engine.MaxObservedExits}[rng.IntN(6)]
	return w
}

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
		in.Candidates = append(in.Candidates, observed(rng, worker(fmt.Sprintf("w%d", i+1), rng.IntN(max+1), max, rng.IntN(5), tags...)))
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
