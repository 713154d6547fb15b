package router_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// TestShippedScripts compiles every script in scripts/ and checks, on random
// snapshots, that each makes the choice its header comment promises.
func TestShippedScripts(t *testing.T) {
	files, err := filepath.Glob("../scripts/*")
	if err != nil || len(files) < 8 {
		t.Fatalf("scripts: %v, %v", files, err)
	}
	policies := map[string]func(in engine.Selection) string{
		"least_loaded.lua": func(in engine.Selection) string {
			return pick(nativeViews(in), router.LeastLoadedIndex(nativeViews(in)))
		},
		"least_loaded.expr": func(in engine.Selection) string {
			return pick(nativeViews(in), router.LeastLoadedIndex(nativeViews(in)))
		},
		"sticky.lua": func(in engine.Selection) string {
			return pick(nativeViews(in), router.RendezvousIndex(nativeViews(in), in.WorkflowID))
		},
		"p2c.lua": func(in engine.Selection) string {
			return pick(nativeViews(in), router.P2CIndex(nativeViews(in), router.NewRand(in.ConversationID, in.Attempt)))
		},
		"affinity.lua": func(in engine.Selection) string {
			vs := nativeViews(in)
			if eu := router.WithTag(vs, "eu"); len(eu) > 0 {
				return eu[router.LeastLoadedIndex(eu)].ID
			}
			return pick(vs, router.LeastLoadedIndex(vs))
		},
		"p2c_ewma.lua": func(in engine.Selection) string {
			var free []engine.ConsumerStateView
			for _, v := range nativeViews(in) {
				if v.HasCapacity() {
					free = append(free, v)
				}
			}
			return pick(free, router.P2CEWMAIndex(free, router.NewRand(in.ConversationID, in.Attempt)))
		},
		"outlier_eject.expr": func(in engine.Selection) string {
			vs := nativeViews(in)
			if kept := router.Healthy(vs, 0.25); len(kept) > 0 {
				vs = kept
			}
			return pick(vs, router.LeastLoadedIndex(vs))
		},
		"canary.expr": func(in engine.Selection) string {
			vs := nativeViews(in)
			var stable []engine.ConsumerStateView
			for _, v := range vs {
				if !v.HasAffinity("canary") {
					stable = append(stable, v)
				}
			}
			canaries := router.WithTag(vs, "canary")
			first, second := stable, canaries
			if router.NewRand(in.ConversationID, in.Attempt).Float64() < 0.05 {
				first, second = canaries, stable
			}
			if i := router.LeastLoadedIndex(first); i >= 0 {
				return first[i].ID
			}
			return pick(second, router.LeastLoadedIndex(second))
		},
	}
	rng := rand.New(rand.NewPCG(3, 5))
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(src), "-- "+name) && !strings.HasPrefix(string(src), "// "+name) {
				t.Errorf("%s does not start with a comment naming it and saying what it does", name)
			}
			lang := router.Lua
			if filepath.Ext(name) == ".expr" {
				lang = router.Expr
			}
			prog, err := router.NewCompiler(router.Limits{}).Compile(lang, f, src)
			if err != nil {
				t.Fatal(err)
			}
			want, ok := policies[name]
			if !ok {
				t.Fatalf("no reference policy for %s", name)
			}
			s := router.NewScript(prog, f, time.Second)
			for range 300 {
				in := randomSelection(t, rng)
				in.Request.Input.Data = []byte(`{"region":"eu"}`)
				d, err := s.Select(context.Background(), in)
				if err != nil {
					t.Fatal(err)
				}
				if w := want(in); d.WorkerID != w {
					t.Fatalf("chose %q, want %q, on %+v", d.WorkerID, w, in.Candidates)
				}
			}
		})
	}
}

// TestAffinityWithoutJSON checks that affinity.lua, given an input that its
// content type calls JSON but that is not, routes as with no region rather
// than failing: json_decode raises, and the script catches it.
func TestAffinityWithoutJSON(t *testing.T) {
	src, err := os.ReadFile("../scripts/affinity.lua")
	if err != nil {
		t.Fatal(err)
	}
	s := compile(t, router.Lua, string(src))
	in := selection(t, worker("eu-1", 3, 4, 0, "eu"), worker("us-1", 0, 4, 0, "us"))
	for _, input := range []string{`{"region":"eu"`, `region=eu`, ``} {
		in.Request.Input.Data = []byte(input)
		d, err := s.Select(context.Background(), in)
		if err != nil || d.WorkerID != "us-1" {
			t.Errorf("input %q: chose %q, %v; want us-1, the least loaded", input, d.WorkerID, err)
		}
	}
}

// TestObservedScripts: p2c_ewma.lua and outlier_eject.expr choose as their
// headers say on snapshots with observed figures: the slow worker gets
// less work, the failing one is skipped, and used when it is all there is.
func TestObservedScripts(t *testing.T) {
	load := func(name string) *router.Script {
		src, err := os.ReadFile("../scripts/" + name)
		if err != nil {
			t.Fatal(err)
		}
		lang := router.Lua
		if filepath.Ext(name) == ".expr" {
			lang = router.Expr
		}
		return compile(t, lang, string(src))
	}
	choose := func(s *router.Script, conv string, cands ...engine.Worker) string {
		in := selection(t, cands...)
		in.ConversationID = conv
		d, err := s.Select(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		return d.WorkerID
	}
	t.Run("p2c_ewma.lua", func(t *testing.T) {
		s := load("p2c_ewma.lua")
		// Two workers: both are drawn each time, so the cost decides.
		for conv := range 20 {
			c := fmt.Sprint(conv)
			if got := choose(s, c, figures("slow", 0, 0.020, 0.020, 0, 0), figures("fast", 0, 0.002, 0.002, 0, 0)); got != "fast" {
				t.Errorf("%s: slow vs fast, both idle: chose %s", c, got)
			}
			// fast is busier, but 0.002 × 4 < 0.020 × 1.
			if got := choose(s, c, figures("slow", 0, 0.020, 0.020, 0, 0), figures("fast", 3, 0.002, 0.002, 0, 0)); got != "fast" {
				t.Errorf("%s: idle slow vs busy fast: chose %s", c, got)
			}
			// fast has no free slot (max 4): only slow is left.
			if got := choose(s, c, figures("slow", 0, 0.020, 0.020, 0, 0), figures("fast", 4, 0.002, 0.002, 0, 0)); got != "slow" {
				t.Errorf("%s: fast full: chose %s", c, got)
			}
			if got := choose(s, c, figures("slow", 4, 0.020, 0.020, 0, 0), figures("fast", 4, 0.002, 0.002, 0, 0)); got != "" {
				t.Errorf("%s: all full: chose %q, want none", c, got)
			}
			// A new worker counts at the mean of the others (0.020): at
			// equal load it ties with slow, and the less loaded wins.
			if got := choose(s, c, figures("slow", 2, 0.020, 0.020, 0, 0), figures("new", 1, 0, 0, 0, 0)); got != "new" {
				t.Errorf("%s: new vs slow: chose %s", c, got)
			}
		}
		// Among many, the slow worker gets less work than a fast one.
		counts := map[string]int{}
		for conv := range 400 {
			cands := []engine.Worker{figures("slow", 1, 0.020, 0.020, 0, 0)}
			for i := range 3 {
				cands = append(cands, figures(fmt.Sprintf("fast%d", i), 1, 0.002, 0.002, 0, 0))
			}
			counts[choose(s, fmt.Sprint(conv), cands...)]++
		}
		if counts["slow"] != 0 {
			t.Errorf("the slow worker got %d of 400 at equal load: %v", counts["slow"], counts)
		}
	})
	t.Run("outlier_eject.expr", func(t *testing.T) {
		s := load("outlier_eject.expr")
		for _, tc := range []struct {
			name  string
			cands []engine.Worker
			want  string
		}{
			{"failing worker skipped though idle", []engine.Worker{figures("failing", 0, 0.001, 0.001, 0.5, 0), figures("ok", 2, 0.010, 0.010, 0, 0)}, "ok"},
			{"at the limit kept", []engine.Worker{figures("quarter", 0, 0, 0, 0.25, 0), figures("ok", 2, 0, 0, 0, 0)}, "quarter"},
			{"new worker kept", []engine.Worker{figures("failing", 0, 0, 0, 1, 0), figures("new", 3, 0, 0, 0, 0)}, "new"},
			{"least loaded among the kept", []engine.Worker{figures("a", 3, 0, 0, 0.1, 0), figures("failing", 0, 0, 0, 0.9, 0), figures("b", 1, 0, 0, 0.2, 0)}, "b"},
			{"the only worker, failing", []engine.Worker{figures("failing", 1, 0, 0, 0.9, 0)}, "failing"},
			{"all failing: least loaded", []engine.Worker{figures("f1", 2, 0, 0, 0.9, 0), figures("f2", 1, 0, 0, 0.5, 0)}, "f2"},
			{"none", nil, ""},
		} {
			if got := choose(s, "c1", tc.cands...); got != tc.want {
				t.Errorf("%s: chose %q, want %q", tc.name, got, tc.want)
			}
		}
	})
}
