package peers

import (
	"context"
	"fmt"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// sizes are the candidate counts every implementation is measured at.
var sizes = []int{4, 16, 64, 256}

// sink keeps the benchmarked choices alive.
var sink string

// impl is one benchmarked implementation and the Go policy it must agree
// with.
type impl struct {
	name string
	ref  router.Policy
	new  func(tb testing.TB) Chooser
}

// impls returns every implementation, in the order of the table in
// BENCHMARKS.md.
func impls() []impl {
	script := func(lang router.Lang, name, src string) func(testing.TB) Chooser {
		return func(tb testing.TB) Chooser {
			s, err := NewScript(lang, name, src)
			if err != nil {
				tb.Fatal(err)
			}
			return RouterChooser{s}
		}
	}
	peer := func(f func() (Chooser, error)) func(testing.TB) Chooser {
		return func(tb testing.TB) Chooser {
			c, err := f()
			if err != nil {
				tb.Fatal(err)
			}
			return c
		}
	}
	return []impl{
		{"go-native", MostFree, func(testing.TB) Chooser { return RouterChooser{router.NewNative("most-free", MostFree)} }},
		{"dispatch-lua-loop", MostFree, script(router.Lua, "most_free.lua", LuaLoop)},
		{"dispatch-expr-loop", MostFree, script(router.Expr, "most_free.expr", ExprLoop)},
		{"gopher-lua-flat", MostFree, peer(func() (Chooser, error) { return NewGopherLuaFlat() })},
		{"starlark", MostFree, peer(func() (Chooser, error) { return NewStarlark() })},
		{"starlark-lazy", MostFree, peer(func() (Chooser, error) { return NewStarlarkLazy() })},
		{"goja", MostFree, peer(func() (Chooser, error) { return NewGoja() })},
		{"rego-prepared", MostFree, peer(func() (Chooser, error) { return NewRego(context.Background()) })},
		{"helper-policy/go-native", LeastLoadedFirst, func(testing.TB) Chooser {
			return RouterChooser{router.NewNative("least-loaded-first", LeastLoadedFirst)}
		}},
		{"helper-policy/dispatch-lua", LeastLoadedFirst, script(router.Lua, "least_loaded.lua", LuaHelper)},
		{"helper-policy/dispatch-expr", LeastLoadedFirst, script(router.Expr, "least_loaded.expr", ExprHelper)},
	}
}

// check asks c for a decision on in and fails unless it is ref's.
func check(tb testing.TB, c Chooser, ref router.Policy, in engine.Selection) {
	tb.Helper()
	got, err := c.Choose(context.Background(), in)
	if want := ref(in); err != nil || got != want {
		tb.Fatalf("chose %q (err %v), Go chose %q", got, err, want)
	}
}

// TestSameChoice checks that every implementation picks the worker its Go
// reference picks, at every benchmarked size and on edge cases: no tagged
// candidate with room, no candidate with room, ties.
func TestSameChoice(t *testing.T) {
	full := func(id string, tags ...string) engine.Worker {
		return engine.Worker{State: engine.ConsumerStateView{ID: id, InFlight: 2, MaxInFlight: 2, Tags: tags}}
	}
	free := func(id string, n int, tags ...string) engine.Worker {
		return engine.Worker{State: engine.ConsumerStateView{ID: id, InFlight: 1, MaxInFlight: 1 + n, Tags: tags}}
	}
	cases := map[string][]engine.Worker{
		"gpu full, eu free":   {full("g1", "gpu"), free("e1", 1, "eu"), free("e2", 3, "eu")},
		"all full":            {full("a", "gpu"), full("b", "eu")},
		"ties to the first":   {free("a", 2, "eu"), free("b", 2, "gpu"), free("c", 2, "gpu")},
		"gpu beats more free": {free("a", 5, "eu"), free("b", 1, "gpu")},
	}
	for _, n := range sizes {
		cases[fmt.Sprintf("n=%d", n)] = Candidates(n)
	}
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			c := im.new(t)
			for name, ws := range cases {
				t.Run(name, func(t *testing.T) {
					in := NewSelection(0)
					in.Candidates = ws
					check(t, c, im.ref, in)
				})
			}
		})
	}
}

// TestCandidatesExercisePolicy guards the generator: at each size the
// policy's answer is a tagged worker that is not the first candidate, so no
// implementation can agree by returning the first.
func TestCandidatesExercisePolicy(t *testing.T) {
	for _, n := range sizes {
		in := NewSelection(n)
		got := MostFree(in)
		if got == "" || got == in.Candidates[0].ID() {
			t.Errorf("n=%d: the policy chose %q", n, got)
		}
	}
}

// BenchmarkPeers measures one decision of every implementation at every
// size; read the ratios to go-native within one run.
//
//	make bench-peers
func BenchmarkPeers(b *testing.B) {
	ctx := context.Background()
	for _, n := range sizes {
		in := NewSelection(n)
		for _, im := range impls() {
			b.Run(fmt.Sprintf("n=%d/%s", n, im.name), func(b *testing.B) {
				c := im.new(b)
				check(b, c, im.ref, in)
				b.ReportAllocs()
				for b.Loop() {
					id, err := c.Choose(ctx, in)
					if err != nil {
						b.Fatal(err)
					}
					sink = id
				}
			})
		}
	}
}
