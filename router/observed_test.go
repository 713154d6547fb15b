package router_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// figures returns a worker with observed figures.
func figures(id string, inFlight int, lat, peak, errRate float64, exits int) engine.Worker {
	return engine.Worker{State: engine.ConsumerStateView{ID: id, InFlight: inFlight, MaxInFlight: 4,
		LatencyEWMA: lat, LatencyPeakEWMA: peak, ErrorRate: errRate, Exits: exits}}
}

// TestScriptsReadObservedFigures: both languages, on the fast paths and
// in the interpreters, read each observed figure, and a call that changes
// only that figure of one candidate sees the new value (the runtimes keep
// what they showed the last call and rewrite what changed).
func TestScriptsReadObservedFigures(t *testing.T) {
	set := map[string]func(w *engine.ConsumerStateView, x float64){
		"latency_ewma":      func(w *engine.ConsumerStateView, x float64) { w.LatencyEWMA = x },
		"latency_peak_ewma": func(w *engine.ConsumerStateView, x float64) { w.LatencyPeakEWMA = x },
		"error_rate":        func(w *engine.ConsumerStateView, x float64) { w.ErrorRate = x },
		"exits":             func(w *engine.ConsumerStateView, x float64) { w.Exits = int(x) },
	}
	for field, setField := range set {
		// The candidate with the highest figure.
		srcs := map[string]struct {
			lang router.Lang
			src  string
		}{
			"lua fast": {router.Lua, fmt.Sprintf(`function route(r, c)
  local best
  for i = 1, #c do local w = c[i] if best == nil or w.%[1]s > best.%[1]s then best = w end end
  return best and best.id
end`, field)},
			"lua interpreter": {router.Lua, fmt.Sprintf(`function route(r, c)
  local seen = {}
  local best
  for _, w in ipairs(c) do seen[#seen + 1] = w if best == nil or w.%[1]s > best.%[1]s then best = w end end
  return best and best.id
end`, field)},
			"expr fast":   {router.Expr, fmt.Sprintf(`reduce(candidates, #.%[1]s > #acc.%[1]s ? # : #acc, candidates[0]).id`, field)},
			"expr vm":     {router.Expr, fmt.Sprintf(`let ids = map(candidates, #.id); reduce(candidates, #.%[1]s > #acc.%[1]s ? # : #acc, candidates[0]).id`, field)},
			"expr member": {router.Expr, fmt.Sprintf(`candidates[1].%[1]s > candidates[0].%[1]s ? candidates[1].id : candidates[0].id`, field)},
		}
		for name, p := range srcs {
			t.Run(field+"/"+name, func(t *testing.T) {
				s := compile(t, p.lang, p.src)
				cands := []engine.Worker{figures("w1", 0, 0, 0, 0, 0), figures("w2", 0, 0, 0, 0, 0)}
				for i, step := range []struct {
					w    int
					x    float64
					want string
				}{
					{0, 0.5, "w1"}, {1, 0.75, "w2"}, {1, 0.25, "w1"}, {0, 0, "w2"}, {1, 1, "w2"},
				} {
					x := step.x
					if field == "exits" {
						x *= 16
					}
					setField(&cands[step.w].State, x)
					d, err := s.Select(context.Background(), selection(t, cands...))
					if err != nil || d.WorkerID != step.want {
						t.Fatalf("step %d: Select: %q, %v; want %q", i, d.WorkerID, err, step.want)
					}
				}
			})
		}
	}
}

// TestObservedHelpersChecked: the new helpers' arguments are checked as
// the others': a wrong count or a non-number limit the checker can see
// is refused at compile time, one it cannot see fails the call, and a
// misspelt name gets a suggestion.
func TestObservedHelpersChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		lang router.Lang
		src  string
		want string
	}{
		{"lua healthy string limit", router.Lua, `function route(r, c) return dispatch.least_loaded(dispatch.healthy(c, "0.5")) end`,
			"dispatch.healthy: argument 2 must be a number, got a string"},
		{"lua healthy boolean limit", router.Lua, `function route(r, c) return dispatch.least_loaded(dispatch.healthy(c, true)) end`,
			"dispatch.healthy: argument 2 must be a number, got a boolean"},
		{"lua healthy one argument", router.Lua, `function route(r, c) return dispatch.least_loaded(dispatch.healthy(c)) end`,
			"dispatch.healthy takes 2 arguments (list, max_error_rate), got 1"},
		{"lua p2c_ewma two arguments", router.Lua, `function route(r, c) return dispatch.p2c_ewma(c, 1) end`,
			"dispatch.p2c_ewma takes 1 argument (list), got 2"},
		{"lua least_latency of a string", router.Lua, `function route(r, c) return dispatch.least_latency("c") end`,
			"dispatch.least_latency: argument 1 must be a list of candidates, got a string"},
		{"lua misspelt helper", router.Lua, `function route(r, c) return dispatch.p2c_ewm(c) end`,
			"dispatch has no p2c_ewm (did you mean p2c_ewma?)"},
		{"lua misspelt field", router.Lua, `function route(r, c) if c[1].latency_ewm > 0 then return c[1] end end`,
			"a candidate has no field latency_ewm (did you mean latency_ewma?)"},
		{"lua healthy returned", router.Lua, `function route(r, c) return dispatch.healthy(c, 0.5) end`,
			"route returns dispatch.healthy's result, list of candidates, which is never a worker id"},
		{"expr healthy string limit", router.Expr, `leastLoaded(healthy(candidates, "0.5"))`,
			"healthy: argument 2 must be a number, got a string"},
		{"expr healthy one argument", router.Expr, `leastLoaded(healthy(candidates))`,
			"healthy takes 2 arguments (list, max_error_rate), got 1"},
		{"expr p2cEwma of a number", router.Expr, `p2cEwma(1)`,
			"p2cEwma: argument 1 must be a list of candidates, got an integer"},
		{"expr misspelt helper", router.Expr, `p2cEWMA(candidates)`, "unknown name p2cEWMA (did you mean p2cEwma?)"},
		{"expr misspelt helper 2", router.Expr, `leastLatncy(candidates)`, "(did you mean leastLatency?)"},
		{"expr misspelt field", router.Expr, `candidates[0].error_rat > 0 ? nil : nil`, "a candidate has no field error_rat (did you mean error_rate?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := router.NewCompiler(router.Limits{}).Compile(tc.lang, "test."+string(tc.lang), []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("compile: %v; want an error saying %q", err, tc.want)
			}
		})
	}
	// Limits the checker cannot see: a routing error when the call runs,
	// in both languages. A number passes.
	cands := []engine.Worker{figures("w1", 0, 0, 0, 0.5, 0), figures("w2", 1, 0, 0, 0, 0)}
	for _, tc := range []struct {
		name string
		lang router.Lang
		src  string
		want string // "" for a decision of w2
	}{
		{"lua string at run time", router.Lua, `function route(r, c) local lim = r.workflow_id return dispatch.least_loaded(dispatch.healthy(c, lim)) end`, "number expected, got string"},
		{"lua numeric string at run time", router.Lua, `function route(r, c) local lim = "0.25" return dispatch.least_loaded(dispatch.healthy(c, lim)) end`, "number expected, got string"},
		{"lua nil at run time", router.Lua, `function route(r, c) local lim return dispatch.least_loaded(dispatch.healthy(c, lim)) end`, "number expected, got nil"},
		{"lua number", router.Lua, `function route(r, c) local lim = 0.25 return dispatch.least_loaded(dispatch.healthy(c, lim)) end`, ""},
		{"expr string at run time", router.Expr, `let lim = fromJSON(request.input).region; leastLoaded(healthy(candidates, lim))`, "healthy: argument 2 must be a number, got string"},
		{"expr integer", router.Expr, `leastLoaded(healthy(candidates, 0))`, ""},
		{"expr float", router.Expr, `leastLoaded(healthy(candidates, 0.25))`, ""},
		{"expr figure as the limit", router.Expr, `leastLoaded(healthy(candidates, candidates[1].error_rate))`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compile(t, tc.lang, tc.src)
			for range 2 {
				d, err := s.Select(context.Background(), selection(t, cands...))
				if tc.want == "" {
					if err != nil || d.WorkerID != "w2" {
						t.Fatalf("Select: %q, %v; want w2", d.WorkerID, err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Select: %q, %v; want an error saying %q", d.WorkerID, err, tc.want)
				}
			}
		})
	}
}

// TestObservedHelpersReplay: p2c_ewma draws from the decision's seeded
// source, as p2c does: the same conversation and attempt choose the same
// worker every time and in both languages, and a helper called before it
// in the same call moves the draw as it does p2c's.
func TestObservedHelpersReplay(t *testing.T) {
	var cands []engine.Worker
	for i := range 8 {
		cands = append(cands, figures(fmt.Sprintf("w%d", i), i%3, 0, float64(i%4)*0.01, 0, 0))
	}
	scripts := []*router.Script{
		compile(t, router.Lua, `function route(r, c) return dispatch.p2c_ewma(c) end`),
		compile(t, router.Expr, `p2cEwma(candidates)`),
		compile(t, router.Lua, `function route(r, c) local x = {} return dispatch.p2c_ewma(c) end`), // gopher-lua
		compile(t, router.Expr, `let ids = map(candidates, #.id); p2cEwma(candidates)`),             // the VM
	}
	chosen := map[string]bool{}
	for conv := range 40 {
		in := selection(t, cands...)
		in.ConversationID = fmt.Sprintf("conv-%d", conv)
		in.Attempt = 1 + conv%3
		vs := nativeViews(in)
		want := pick(vs, router.P2CEWMAIndex(vs, router.NewRand(in.ConversationID, in.Attempt)))
		chosen[want] = true
		for i, s := range scripts {
			for range 2 {
				d, err := s.Select(context.Background(), in)
				if err != nil || d.WorkerID != want {
					t.Fatalf("%s: script %d chose %q, %v; want %q", in.ConversationID, i, d.WorkerID, err, want)
				}
			}
		}
	}
	if len(chosen) < 3 {
		t.Errorf("only %d distinct choices", len(chosen))
	}
}
