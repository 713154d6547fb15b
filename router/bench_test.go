package router_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// The benchmarked policy: the least loaded candidate tagged "gpu", with two
// workers excluded earlier in the conversation.
var benchPolicies = []struct {
	name string
	lang router.Lang
	src  string
}{
	{"expr-helper", router.Expr, `leastLoaded(candidates, "gpu")`},
	{"expr-helpers-composed", router.Expr, `leastLoaded(withTag(candidates, "gpu"))`},
	{"expr-pure", router.Expr, `let gpu = filter(candidates, "gpu" in .tags);
len(gpu) == 0 ? nil : reduce(gpu,
  (#.in_flight + #.buffer_depth) * max(#acc.max_in_flight, 1) < (#acc.in_flight + #acc.buffer_depth) * max(#.max_in_flight, 1) ? # : #acc,
  gpu[0]).id`},
	{"lua-helper", router.Lua, `function route(r, c) return dispatch.least_loaded(c, "gpu") end`},
	{"lua-helpers-composed", router.Lua, `function route(r, c) return dispatch.least_loaded(dispatch.with_tag(c, "gpu")) end`},
	{"lua-loop", router.Lua, `function route(r, c)
  local best, bestLoad, bestMax
  for i = 1, #c do
    local w = c[i]
    if w.tags.gpu then
      local load, m = w.in_flight + w.buffer_depth, w.max_in_flight
      if best == nil or load * bestMax < bestLoad * m then
        best, bestLoad, bestMax = w, load, m
      end
    end
  end
  return best and best.id
end`},
	{"lua-loop-methods", router.Lua, `function route(r, c)
  local best
  for i = 1, #c do
    local w = c[i]
    if w:has_tag("gpu") and (best == nil or (w.in_flight + w.buffer_depth) * math.max(best.max_in_flight, 1)
        < (best.in_flight + best.buffer_depth) * math.max(w.max_in_flight, 1)) then
      best = w
    end
  end
  return best and best.id
end`},
}

// nativeAffinity is the same policy in Go, as a native router would run it.
func nativeAffinity(in engine.Selection) string {
	best := -1
	for i := range in.Candidates {
		s := &in.Candidates[i].State
		if !s.HasAffinity("gpu") {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := &in.Candidates[best].State
		if (s.InFlight+s.BufferDepth)*max(b.MaxInFlight, 1) < (b.InFlight+b.BufferDepth)*max(s.MaxInFlight, 1) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return in.Candidates[best].ID()
}

func benchSelection(b *testing.B, n int) engine.Selection {
	in := selection(b)
	in.Excluded = []string{"x1", "x2"}
	for i := range n {
		tags := []string{"eu"}
		if i%2 == 0 {
			tags = append(tags, "gpu")
		}
		in.Candidates = append(in.Candidates, worker(fmt.Sprintf("w%d", i), (i*7)%5, 4, (i*3)%4, tags...))
	}
	return in
}

// BenchmarkDecision compares one routing decision across implementations at
// several candidate counts; read the ratios to native within one run.
func BenchmarkDecision(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{4, 16, 64, 256} {
		in := benchSelection(b, n)
		want := nativeAffinity(in)
		b.Run(fmt.Sprintf("n=%d/native", n), func(b *testing.B) {
			r := router.NewNative("affinity", nativeAffinity)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Select(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, p := range benchPolicies {
			b.Run(fmt.Sprintf("n=%d/%s", n, p.name), func(b *testing.B) {
				s := router.NewScript(mustProgram(b, p.lang, p.src), p.name, time.Second)
				d, err := s.Select(ctx, in)
				if err != nil || d.WorkerID != want {
					b.Fatalf("chose %q (%v), native chose %q", d.WorkerID, err, want)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Select(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRunawayStop measures how long a script in an endless loop runs
// before it is stopped, as a ratio to its deadline (median over the runs).
func BenchmarkRunawayStop(b *testing.B) {
	const deadline = 10 * time.Millisecond
	s := router.NewScript(mustProgram(b, router.Lua, `function route() local n = 0 while true do n = n + 1 end end`), "spin.lua", deadline)
	in := benchSelection(b, 16)
	var ratios []float64
	for b.Loop() {
		start := time.Now()
		if _, err := s.Select(context.Background(), in); err == nil {
			b.Fatal("the runaway script returned")
		}
		ratios = append(ratios, float64(time.Since(start))/float64(deadline))
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "stop/deadline")
}

// BenchmarkDecisionOverhead measures what the host adds around one Lua
// helper decision at 16 candidates: an explicit bound on concurrent calls
// (a place taken and given back; without one, the check for a timing-out
// script is an atomic load) and the slot's ring of recent decisions (a copy
// of the selection into it), sequential and from every core at once.
//
//	go test ./router -run '^$' -bench DecisionOverhead -benchmem -count 5
func BenchmarkDecisionOverhead(b *testing.B) {
	ctx := context.Background()
	in := benchSelection(b, 16)
	const src = `function route(r, c) return dispatch.least_loaded(c, "gpu") end`
	script := func(bound int) *router.Script {
		p, err := router.NewCompiler(router.Limits{MaxConcurrentCalls: bound}).Compile(router.Lua, "bench.lua", []byte(src))
		if err != nil {
			b.Fatal(err)
		}
		return router.NewScript(p, "bench.lua", time.Second)
	}
	for _, tc := range []struct {
		name string
		r    engine.Router
	}{
		{"script", script(0)},
		{"script/calls=2", script(2)},
		{"slot", router.NewSlot(script(0))},
		{"slot/keep-recent", router.NewSlot(script(0), router.KeepRecent(router.DefaultRecentDecisions))},
	} {
		b.Run(tc.name+"/sequential", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.r.Select(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := tc.r.Select(ctx, in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// The helpers side by side, the observed-figure ones (issue 18) beside
// the ones they refine: p2c and p2c_ewma, least_loaded and least_latency,
// with_tag and healthy (each composed with least_loaded, to return an id).
var helperBenches = []struct {
	name      string
	lua, expr string
	// native is the helper in Go: an index into vs, or -1.
	native func(vs []engine.ConsumerStateView, in engine.Selection) int
}{
	{name: "p2c", lua: `dispatch.p2c(c)`, expr: `p2c(candidates)`,
		native: func(vs []engine.ConsumerStateView, in engine.Selection) int {
			return router.P2CIndex(vs, router.NewRand(in.ConversationID, in.Attempt))
		}},
	{name: "p2c_ewma", lua: `dispatch.p2c_ewma(c)`, expr: `p2cEwma(candidates)`,
		native: func(vs []engine.ConsumerStateView, in engine.Selection) int {
			return router.P2CEWMAIndex(vs, router.NewRand(in.ConversationID, in.Attempt))
		}},
	{name: "least_loaded", lua: `dispatch.least_loaded(c)`, expr: `leastLoaded(candidates)`,
		native: func(vs []engine.ConsumerStateView, _ engine.Selection) int { return router.LeastLoadedIndex(vs) }},
	{name: "least_latency", lua: `dispatch.least_latency(c)`, expr: `leastLatency(candidates)`,
		native: func(vs []engine.ConsumerStateView, _ engine.Selection) int { return router.LeastLatencyIndex(vs) }},
	{name: "with_tag", lua: `dispatch.least_loaded(dispatch.with_tag(c, "gpu"))`, expr: `leastLoaded(withTag(candidates, "gpu"))`,
		native: func(vs []engine.ConsumerStateView, _ engine.Selection) int {
			return router.LeastLoadedWithTagIndex(vs, "gpu")
		}},
	{name: "healthy", lua: `dispatch.least_loaded(dispatch.healthy(c, 0.25))`, expr: `leastLoaded(healthy(candidates, 0.25))`,
		native: func(vs []engine.ConsumerStateView, _ engine.Selection) int {
			h := router.Healthy(vs, 0.25)
			if i := router.LeastLoadedIndex(h); i >= 0 {
				return slicesIndexID(vs, h[i].ID)
			}
			return -1
		}},
}

func slicesIndexID(vs []engine.ConsumerStateView, id string) int {
	return slices.IndexFunc(vs, func(v engine.ConsumerStateView) bool { return v.ID == id })
}

// observedBenchSelection is benchSelection with observed figures: varied
// latencies, some workers with none yet, a quarter failing half the time.
func observedBenchSelection(b *testing.B, n int) engine.Selection {
	in := benchSelection(b, n)
	for i := range in.Candidates {
		s := &in.Candidates[i].State
		if i%7 != 3 {
			s.LatencyEWMA = 0.001 * float64(1+(i*5)%9)
			s.LatencyPeakEWMA = s.LatencyEWMA * float64(1+i%3)
		}
		s.ErrorRate = 0.05 * float64(i%3)
		if i%4 == 1 {
			s.ErrorRate = 0.5
		}
		s.Exits = i % 3
	}
	return in
}

// BenchmarkHelpers is one decision by each helper alone, in Go (the
// package pick function on the views, as the runtimes call it), Lua and
// expr, at 16 and 64 candidates; read the ratios within one run:
//
//	go test -run '^$' -bench 'Helpers' -benchmem -count 3 ./router/
func BenchmarkHelpers(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{16, 64} {
		in := observedBenchSelection(b, n)
		views := make([]engine.ConsumerStateView, len(in.Candidates))
		for i, w := range in.Candidates {
			views[i] = w.State
		}
		for _, h := range helperBenches {
			want := ""
			if i := h.native(views, in); i >= 0 {
				want = views[i].ID
			}
			b.Run(fmt.Sprintf("n=%d/%s/go", n, h.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					h.native(views, in)
				}
			})
			for _, lang := range []router.Lang{router.Lua, router.Expr} {
				src := h.expr
				if lang == router.Lua {
					src = "function route(r, c) return " + h.lua + " end"
				}
				b.Run(fmt.Sprintf("n=%d/%s/%s", n, h.name, lang), func(b *testing.B) {
					s := router.NewScript(mustProgram(b, lang, src), h.name, time.Second)
					d, err := s.Select(ctx, in)
					if err != nil || d.WorkerID != want {
						b.Fatalf("chose %q (%v), Go chose %q", d.WorkerID, err, want)
					}
					b.ReportAllocs()
					for b.Loop() {
						if _, err := s.Select(ctx, in); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
