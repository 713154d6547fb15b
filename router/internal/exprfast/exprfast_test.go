package exprfast_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/exprfast"
	"github.com/aion-dispatch/dispatch/router/internal/names"
)

// benchPolicy is the router benchmark's expr-pure policy.
const benchPolicy = `let gpu = filter(candidates, "gpu" in .tags);
len(gpu) == 0 ? nil : reduce(gpu,
  (#.in_flight + #.buffer_depth) * max(#acc.max_in_flight, 1) < (#acc.in_flight + #acc.buffer_depth) * max(#.max_in_flight, 1) ? # : #acc,
  gpu[0]).id`

func gpuSelection(n int) engine.Selection {
	var sel engine.Selection
	for i := range n {
		tags := []string{"eu"}
		if i%2 == 0 {
			tags = append(tags, "gpu")
		}
		sel.Candidates = append(sel.Candidates, engine.Worker{State: engine.ConsumerStateView{
			ID: fmt.Sprintf("w%d", i), InFlight: (i * 7) % 5, MaxInFlight: 4, BufferDepth: (i * 3) % 4, Tags: tags}})
	}
	return sel
}

// TestNoAllocations: a decision of the benchmark's policy, of a helper and
// of helpers composed allocates nothing once the frame is pooled.
func TestNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled frames")
	}
	sel := gpuSelection(16)
	for _, src := range []string{benchPolicy, `leastLoaded(candidates, "gpu")`, `leastLoaded(withTag(candidates, "gpu"))`,
		`reduce(filter(candidates, .available > 0 && !(.id in excluded)), #.in_flight < #acc.in_flight ? # : #acc)?.id`} {
		p := compilePair(t, src)
		if p == nil || p.fast == nil {
			t.Fatalf("%s: not on the fast path", src)
		}
		ctx, deadline := context.Background(), time.Now().Add(time.Minute)
		if _, err := p.fast.Run(ctx, sel, deadline); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = p.fast.Run(ctx, sel, deadline) }); n != 0 {
			t.Errorf("%s: %.1f allocations per decision, want 0", src, n)
		}
	}
}

// TestHelpersCovered: a call of every expr helper of the table of names
// compiles to the fast path.
func TestHelpersCovered(t *testing.T) {
	for _, name := range names.Expr(names.Helper) {
		h, _ := names.LookupExpr(names.Helper, name)
		var args []string
		for i := range h.MinArgs {
			switch h.Arg(i) {
			case names.List:
				args = append(args, "candidates")
			case names.Candidate:
				args = append(args, "candidates[0]")
			case names.Number:
				args = append(args, "0.5")
			default:
				args = append(args, `"gpu"`)
			}
		}
		src := fmt.Sprintf("%s(%s)", name, strings.Join(args, ", "))
		if h.NeverWorkerID() {
			src = fmt.Sprintf("let x = %s; nil", src)
		}
		p := compilePair(t, src)
		if p == nil {
			t.Errorf("%s: exprrt refuses it", src)
			continue
		}
		if p.fast == nil {
			t.Errorf("%s: not on the fast path: %v", src, p.why)
		}
	}
}

// TestRandomReplayed: a call that draws, then leaves the subset, is run
// again by the VM, which draws the same numbers: the decision is the one
// the VM alone makes.
func TestRandomReplayed(t *testing.T) {
	// x + "" falls back (no string concatenation on the fast path) after
	// random() and p2c drew.
	p := compilePair(t, `let r = random(); let x = p2c(candidates); r < 0.5 ? x : x + ""`)
	if p == nil || p.fast == nil {
		t.Fatal("not on the fast path")
	}
	r := rand.New(rand.NewPCG(5, 6))
	fellBack := 0
	for range 300 {
		sel := randomSelection(r)
		if len(sel.Candidates) == 0 {
			continue
		}
		if !p.check(t, sel) {
			fellBack++
		}
	}
	if fellBack == 0 {
		t.Error("no call fell back: the test tests nothing")
	}
}

// TestConcurrent: one program decides for many goroutines at once, each
// with its own frame.
func TestConcurrent(t *testing.T) {
	p := compilePair(t, benchPolicy)
	if p == nil || p.fast == nil {
		t.Fatal("not on the fast path")
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				sel := gpuSelection(1 + (g*31+i)%40)
				want, _ := p.interp.Run(context.Background(), sel, time.Second)
				got, err := p.fast.Run(context.Background(), sel, time.Now().Add(time.Second))
				if err != nil || got != want {
					t.Errorf("%d candidates: %+v, %v; the VM says %+v", len(sel.Candidates), got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestCompileUnsupported: what is outside the subset is said, with where.
func TestCompileUnsupported(t *testing.T) {
	p := compilePair(t, `map(candidates, .id)[0]`)
	var u *exprfast.Unsupported
	if p == nil || p.fast != nil || !errors.As(p.why, &u) || !strings.Contains(u.Error(), "map") {
		t.Errorf("why = %v, want an *Unsupported naming map", p.why)
	}
	for _, src := range []string{
		`candidates[0].labels.region`,
		`first(filter(candidates, .labels["region"] == "eu"))?.id`,
		`"gpu" in candidates[0].labels ? "x" : nil`,
	} {
		p := compilePair(t, src)
		if p == nil || p.fast != nil || !errors.As(p.why, &u) || !strings.Contains(u.Error(), "labels") {
			t.Errorf("%s: why = %v, want an *Unsupported naming labels", src, p.why)
		}
	}
}
