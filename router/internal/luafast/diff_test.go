package luafast_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yuin/gopher-lua/parse"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/luafast"
	"github.com/aion-dispatch/dispatch/router/internal/luart"
)

// The differential tests: every script runs on the fast path and in the
// interpreter (luart with its fast path turned off), over many selections,
// and the two must agree. Where the fast path falls back, luart's answer is
// the interpreter's by construction; where it decides, the interpreter must
// have decided the same without an error.

var limits = luart.Limits{MaxString: 1 << 20, CallStack: 200, RegistryMax: 1 << 16, PoolSize: 4, CompileTimeout: time.Second}

// timeout bounds each call in the comparisons; a call that times out in
// either runtime is not compared (the interpreter is the slower one).
const timeout = 200 * time.Millisecond

// pair is one script compiled three ways.
type pair struct {
	src    string
	fast   *luafast.Route // nil when the script is outside the subset
	why    error
	prog   *luart.Program // with its fast path, as the router runs it
	interp *luart.Program // the interpreter alone
}

// compilePair compiles src, or returns nil when luart refuses it.
func compilePair(t testing.TB, src string) *pair {
	t.Helper()
	prog, err := luart.Compile([]byte(src), limits)
	if err != nil {
		return nil
	}
	chunk, err := parse.Parse(bytes.NewReader([]byte(src)), "script")
	if err != nil {
		t.Fatalf("luart compiled what does not parse: %v", err)
	}
	route, why := luafast.Compile(chunk)
	if ok, _ := prog.FastPath(); ok != (route != nil) {
		t.Fatalf("luart's fast path (%v) disagrees with luafast.Compile (%v)", ok, why)
	}
	return &pair{src: src, fast: route, why: why, prog: prog, interp: prog.Interpreted()}
}

// check runs sel through every path; it reports whether the fast path
// decided (rather than fell back).
func (p *pair) check(t testing.TB, sel engine.Selection) bool {
	t.Helper()
	decided, _ := p.check2(t, sel)
	return decided
}

// check2 is check, also reporting whether the interpreter decided without
// an error and with a result the router accepts the form of.
func (p *pair) check2(t testing.TB, sel engine.Selection) (decided, clean bool) {
	t.Helper()
	ctx := context.Background()
	want, wantErr := p.interp.Run(ctx, sel, timeout)
	if errors.Is(wantErr, call.ErrTimeout) {
		return false, false
	}
	clean = wantErr == nil && want.Other == ""
	got, gotErr := p.prog.Run(ctx, sel, timeout)
	if !errors.Is(gotErr, call.ErrTimeout) && (got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr)) {
		t.Fatalf("%s\non %s:\nwith the fast path: %+v, %v\ninterpreter:        %+v, %v", p.src, describe(sel), got, gotErr, want, wantErr)
	}
	if p.fast == nil {
		return false, clean
	}
	res, err := p.fast.Run(ctx, sel, time.Now().Add(timeout))
	switch {
	case errors.Is(err, luafast.ErrFallback), errors.Is(err, call.ErrTimeout):
		return false, clean
	case err != nil:
		t.Fatalf("%s\non %s: the fast path failed: %v", p.src, describe(sel), err)
	case wantErr != nil || res != want:
		t.Fatalf("%s\non %s:\nfast path:   %+v\ninterpreter: %+v, %v", p.src, describe(sel), res, want, wantErr)
	}
	return true, clean
}

func describe(sel engine.Selection) string {
	var b strings.Builder
	fmt.Fprintf(&b, "conversation %q attempt %d excluded %q;", sel.ConversationID, sel.Attempt, sel.Excluded)
	for _, w := range sel.Candidates {
		s := w.State
		fmt.Fprintf(&b, " %s(%d/%d+%d %q)", s.ID, s.InFlight, s.MaxInFlight, s.BufferDepth, s.Tags)
	}
	return b.String()
}

var tagPool = []string{"gpu", "eu", "us", "", "1", "has_tag"}

// randomSelection returns a selection of up to 20 candidates.
func randomSelection(r *rand.Rand) engine.Selection {
	ch, _ := engine.DispatchChannel("prod", "email")
	sel := engine.Selection{
		Channel: ch, WorkflowID: fmt.Sprintf("wf-%d", r.IntN(5)), ConversationID: fmt.Sprintf("conv-%d", r.IntN(1000)),
		Attempt: 1 + r.IntN(3),
		Request: engine.ActivityRequest{ActivityType: "send", Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"a":1}`)}},
	}
	n := r.IntN(21)
	if r.IntN(8) == 0 {
		n = 0
	}
	for i := range n {
		var tags []string
		for _, tag := range tagPool {
			if r.IntN(3) == 0 {
				tags = append(tags, tag)
			}
		}
		sel.Candidates = append(sel.Candidates, engine.Worker{State: engine.ConsumerStateView{
			ID: fmt.Sprintf("w%d", i), InFlight: r.IntN(6), MaxInFlight: r.IntN(5), BufferDepth: r.IntN(3), Tags: tags}})
		observed(r, &sel.Candidates[len(sel.Candidates)-1].State)
	}
	for range r.IntN(3) {
		sel.Excluded = append(sel.Excluded, fmt.Sprintf("x%d", r.IntN(4)))
	}
	return sel
}

// TestShippedScripts runs every shipped Lua script both ways and records
// which run on the fast path; least_loaded.lua must.
func TestShippedScripts(t *testing.T) {
	files, _ := filepath.Glob("../../../scripts/*.lua")
	more, _ := filepath.Glob("../../../testdata/**/*.lua")
	files = append(files, more...)
	if len(files) == 0 {
		t.Fatal("no shipped scripts found")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		p := compilePair(t, string(src))
		if p == nil {
			t.Fatalf("%s does not compile", file)
		}
		decided := 0
		for range 300 {
			if p.check(t, randomSelection(r)) {
				decided++
			}
		}
		t.Logf("%s: fast path %v (%v); decided %d of 300 calls", filepath.Base(file), p.fast != nil, p.why, decided)
		if filepath.Base(file) == "least_loaded.lua" && decided != 300 {
			t.Errorf("least_loaded.lua decided %d of 300 calls on the fast path, want all (%v)", decided, p.why)
		}
	}
}

// observed gives v figures drawn from small sets, so that new workers (0),
// ties and error-rate limits come up often.
func observed(r *rand.Rand, v *engine.ConsumerStateView) {
	lat := []float64{0, 0, 0.002, 0.005, 0.020, 0.020, 0.5}
	v.LatencyEWMA = lat[r.IntN(len(lat))]
	v.LatencyPeakEWMA = lat[r.IntN(len(lat))]
	errs := []float64{0, 0, 0, 0.1, 0.25, 0.5, 1}
	v.ErrorRate = errs[r.IntN(len(errs))]
	v.Exits = []int{0, 0, 0, 1, 3, engine.MaxObservedExits}[r.IntN(6)]
}
