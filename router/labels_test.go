package router_test

import (
	"context"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// labelled returns a worker with labels.
func labelled(id string, inFlight int, labels map[string]string) engine.Worker {
	return engine.Worker{State: engine.ConsumerStateView{ID: id, InFlight: inFlight, MaxInFlight: 4, Labels: labels}}
}

// TestScriptsReadLabels: both languages read a candidate's labels, a label
// a worker lacks is nil in Lua and "" in expr, and the scripts (which the fast paths leave to the
// interpreters) choose as their interpreters do.
func TestScriptsReadLabels(t *testing.T) {
	cands := []engine.Worker{
		labelled("w1", 0, nil),
		labelled("w2", 2, map[string]string{"region": "eu", "gpu": "a100"}),
		labelled("w3", 1, map[string]string{"region": "eu", "backup": "w1"}),
		labelled("w4", 0, map[string]string{"region": "us", "gpu": "a100"}),
	}
	for _, tc := range []struct {
		name string
		lang router.Lang
		src  string
		want string
	}{
		{"lua first eu", router.Lua, `function route(r, c)
  for _, w in ipairs(c) do if w.labels.region == "eu" then return w.id end end
end`, "w2"},
		{"lua least loaded eu", router.Lua, `function route(r, c)
  local best
  for _, w in ipairs(c) do
    if w.labels["region"] == "eu" and (best == nil or w.in_flight < best.in_flight) then best = w end
  end
  return best and best.id
end`, "w3"},
		{"lua missing label is nil", router.Lua, `function route(r, c)
  if c[1].labels.region == nil and c[3].labels.gpu == nil then return c[4].labels.gpu and c[4].id end
end`, "w4"},
		{"lua labels are read-only", router.Lua, `function route(r, c)
  local ok = pcall(function() c[2].labels.region = "us" end)
  if not ok and c[2].labels.region == "eu" then return "w2" end
end`, "w2"},
		{"lua pairs in key order", router.Lua, `function route(r, c)
  local s = ""
  for k, v in pairs(c[2].labels) do s = s .. k .. "=" .. v .. ";" end
  if s == "gpu=a100;region=eu;" then return "w2" end
  return s
end`, "w2"},
		{"lua returns a label", router.Lua, `function route(r, c) return c[3].labels.backup end`, "w1"},
		{"expr returns a label", router.Expr, `candidates[2].labels["backup"]`, "w1"},
		{"expr first eu", router.Expr, `first(filter(candidates, .labels.region == "eu"))?.id`, "w2"},
		{"expr least loaded eu", router.Expr, `leastLoaded(filter(candidates, .labels["region"] == "eu"))`, "w3"},
		{"expr missing label is empty", router.Expr, `candidates[0].labels.region == "" && !("gpu" in candidates[2].labels) && "gpu" in candidates[3].labels ? candidates[3].id : nil`, "w4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compile(t, tc.lang, tc.src)
			for range 3 { // the first call, and the ones after it that reuse the state
				d, err := s.Select(context.Background(), selection(t, cands...))
				if err != nil || d.WorkerID != tc.want {
					t.Fatalf("Select: %q, %v; want %q", d.WorkerID, err, tc.want)
				}
			}
		})
	}
}
