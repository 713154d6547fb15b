package router_test

import (
	"context"
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
	if err != nil || len(files) < 6 {
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
