package exprfast_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/exprfast"
	"github.com/aion-dispatch/dispatch/router/internal/exprrt"
)

// The differential tests: every script runs on the fast path and in expr's
// VM (exprrt with its fast path turned off), over many selections, and the
// two must agree. Where the fast path falls back, exprrt's answer is the
// VM's by construction; where it decides, the VM must have decided the same
// without an error.

var limits = exprrt.Limits{MaxNodes: 10_000, MemoryBudget: 1_000_000, PoolSize: 4}

// timeout bounds each call in the comparisons; a call that times out in
// either runtime is not compared (the VM is the slower one).
const timeout = 200 * time.Millisecond

// pair is one script compiled three ways.
type pair struct {
	src    string
	fast   *exprfast.Program // nil when the script is outside the subset
	why    error
	prog   *exprrt.Program // with its fast path, as the router runs it
	interp *exprrt.Program // the VM alone
}

// compilePair compiles src, or returns nil when exprrt refuses it.
func compilePair(t testing.TB, src string) *pair {
	t.Helper()
	prog, err := exprrt.Compile([]byte(src), limits)
	if err != nil {
		return nil
	}
	_, why := prog.FastPath()
	return &pair{src: src, fast: prog.FastProgram(), why: why, prog: prog, interp: prog.Interpreted()}
}

// check runs sel through every path; it reports whether the fast path
// decided (rather than fell back).
func (p *pair) check(t testing.TB, sel engine.Selection) bool {
	t.Helper()
	ctx := context.Background()
	want, wantErr := p.interp.Run(ctx, sel, timeout)
	if errors.Is(wantErr, call.ErrTimeout) {
		return false
	}
	got, gotErr := p.prog.Run(ctx, sel, timeout)
	if !errors.Is(gotErr, call.ErrTimeout) && (got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr)) {
		t.Fatalf("%s\non %s:\nwith the fast path: %+v, %v\nVM:                 %+v, %v", p.src, describe(sel), got, gotErr, want, wantErr)
	}
	if p.fast == nil {
		return false
	}
	res, err := p.fast.Run(ctx, sel, time.Now().Add(timeout))
	switch {
	case errors.Is(err, exprfast.ErrFallback), errors.Is(err, call.ErrTimeout):
		return false
	case err != nil:
		t.Fatalf("%s\non %s: the fast path failed: %v", p.src, describe(sel), err)
	case wantErr != nil || res != want:
		t.Fatalf("%s\non %s:\nfast path: %+v\nVM:        %+v, %v", p.src, describe(sel), res, want, wantErr)
	}
	return true
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

var tagPool = []string{"gpu", "eu", "us", "", "canary", "w1"}

// randomSelection returns a selection of up to 20 candidates, now and then
// none.
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
			ID: fmt.Sprintf("w%d", i), InFlight: r.IntN(6) - r.IntN(2), MaxInFlight: r.IntN(5), BufferDepth: r.IntN(3), Tags: tags}})
		observed(r, &sel.Candidates[len(sel.Candidates)-1].State)
	}
	for range r.IntN(3) {
		sel.Excluded = append(sel.Excluded, fmt.Sprintf("w%d", r.IntN(4)))
	}
	return sel
}

// diffCases are scripts, each with whether it must compile to the fast
// path; every one runs both ways on many selections.
var diffCases = []struct {
	src  string
	fast bool
}{
	// The shapes of real policies.
	{`let gpu = filter(candidates, "gpu" in .tags);
len(gpu) == 0 ? nil : reduce(gpu,
  (#.in_flight + #.buffer_depth) * max(#acc.max_in_flight, 1) < (#acc.in_flight + #acc.buffer_depth) * max(#.max_in_flight, 1) ? # : #acc,
  gpu[0]).id`, true},
	{`reduce(candidates, #.available > #acc.available ? # : #acc)`, true},
	{`reduce(candidates, #.available > #acc.available ? # : #acc).id`, true},
	{`leastLoaded(candidates)`, true},
	{`leastLoaded(candidates, "gpu")`, true},
	{`leastLoaded(withTag(candidates, "gpu"))`, true},
	{`leastLoaded(withTag(candidates, "gpu"), "eu")`, true},
	{`leastLoaded(filter(candidates, .available > 0))`, true},
	{`rendezvous(candidates, request.conversation_id)`, true},
	{`rendezvous(withTag(candidates, "eu"), request.workflow_id)`, true},
	{`p2c(candidates)`, true},
	{`p2c(filter(candidates, !(.id in excluded)))`, true},
	{`random() < 0.5 ? p2c(candidates) : leastLoaded(candidates)`, true},
	{`let stable = filter(candidates, !hasTag(#, "canary"));
let canaries = withTag(candidates, "canary");
random() < 0.05
  ? (leastLoaded(canaries) ?? leastLoaded(stable))
  : (leastLoaded(stable) ?? leastLoaded(canaries))`, true},
	{`find(candidates, .available > 0)`, true},
	{`find(candidates, .available > 0)?.id`, true},
	{`find(candidates, .available > 3)?.tags?.[0]`, true},
	{`filter(candidates, .available > 0)[0]`, true},
	{`filter(candidates, .available > 0)[-1].id`, false},
	{`findLast(candidates, "eu" in .tags)`, false},
	{`len(candidates) == findLast(candidates, true).in_flight ? "w1" : "w2"`, false},
	{`first(filter(candidates, "us" in .tags))`, true},
	{`last(filter(candidates, "us" in .tags))`, false},
	{`first(candidates)`, true},
	{`last(candidates)`, true},
	{`candidates[findIndex(candidates, .buffer_depth == 0) ?? 0]`, true},
	{`let i = findLastIndex(candidates, .in_flight < 2); i == nil ? nil : candidates[i]`, false},
	{`last(withTag(candidates, "us"))`, true},
	{`all(candidates, .available > 0) ? first(candidates) : last(candidates)`, true},
	{`any(candidates, "gpu" in .tags) ? leastLoaded(candidates, "gpu") : leastLoaded(candidates)`, true},
	{`none(candidates, .in_flight > 3) ? "w0" : nil`, true},
	{`one(candidates, "canary" in .tags) ? find(candidates, "canary" in .tags) : nil`, true},
	{`count(candidates, .available > 0) > 2 ? leastLoaded(candidates) : nil`, true},
	{`count(candidates, .available > 0) >= 3 ? "w1" : "w2"`, true},
	{`count(candidates, .available > 0) > 3 ? "w1" : "w2"`, true},
	{`count(candidates, .available > 0) == 0 ? nil : "w1"`, true},
	{`len(filter(candidates, .available > 0)) > 0 ? "w1" : nil`, true},
	{`candidates[0]`, true},
	{`candidates[request.attempt].id`, true},
	{`candidates[len(candidates) - 1]`, true},
	{`len(excluded) > 0 ? excluded[0] : nil`, true},
	{`excluded[-1]`, true},
	{`first(excluded)`, true},
	{`first(excluded) == "w1" ? "w1" : "w2"`, true},
	{`first(excluded) != "w1" ? "w1" : "w2"`, true},
	{`find(excluded, # startsWith "w") == "w1" ? "w1" : "w2"`, true},
	{`len(candidates) > 0 ? candidates[0].tags[0] : nil`, true},
	{`first(candidates[0].tags) ?? "none"`, true},
	{`find(candidates[0].tags, # startsWith "g")`, true},
	{`any(candidates[0].tags, # == "eu") ? "w0" : nil`, true},
	{`request.activity_type == "send" ? "w0" : request.namespace`, true},
	{`request.task_queue + "x"`, true},
	{`request.channel contains "email" ? "w1" : nil`, true},
	{`request.input endsWith "}" ? "w1" : "w2"`, true},
	{`"gpu" in ["gpu", "tpu"] ? "w0" : nil`, true},
	{`request.activity_type in ["send", "recv"] ? "w0" : nil`, true},
	{`request.activity_type not in ["send", "recv"] ? "w0" : nil`, true},
	// Numbers: ints, floats and their mixes.
	{`1 / 2 == 0.5 ? "w1" : "w2"`, true},
	{`4 / 2 == 2 ? "w1" : "w2"`, true},
	{`1 == 1.0 ? "w1" : "w2"`, true},
	{`7 % 3 == 1 ? "w1" : "w2"`, true},
	{`candidates[0].in_flight % candidates[0].max_in_flight == 0 ? "w0" : nil`, true},
	{`candidates[0].in_flight / candidates[0].max_in_flight > 0.5 ? "w0" : nil`, true},
	{`2 ** 10 == 1024 ? "w1" : "w2"`, true},
	{`2 ^ 0.5 > 1.41 ? "w1" : "w2"`, true},
	{`max(1, 1.0) == 1 ? "w1" : "w2"`, true},
	{`min(2.5, 3, -1) < 0 ? "w1" : "w2"`, true},
	{`abs(-3) == 3 && abs(-2.5) == 2.5 ? "w1" : "w2"`, true},
	{`-candidates[0].in_flight < 0 ? "w0" : nil`, true},
	{`9223372036854775807 + 1 < 0 ? "w1" : "w2"`, true},
	{`reduce(candidates, #acc + #.available, 0) > 3 ? "w1" : "w2"`, true},
	{`reduce(candidates, #acc + #.available * 0.5, 0) > 3 ? "w1" : "w2"`, true},
	{`reduce(candidates, #acc + #index, 0) > 10 ? "w1" : "w2"`, true},
	{`let load = reduce(candidates, #acc + #.in_flight, 0) / max(len(candidates), 1); load > 1 ? "w1" : "w2"`, true},
	{`let best = reduce(candidates, #.in_flight < #acc.in_flight ? # : #acc); best.id`, true},
	{`(candidates[0].in_flight + 0.0) / 0 > 1 ? "w1" : "w2"`, true},
	{`0.1 + 0.2 == 0.3 ? "w1" : "w2"`, true},
	{`-0.0 >= (random() / (0.0 / 0.5)) ? "w1" : "w2"`, true}, // the VM's constant pool makes the second zero -0
	{`1 / 0.0 > 0 ? "w1" : "w2"`, true},
	{`1 / -0.0 > 0 ? "w1" : "w2"`, true},
	{`let z = -0.0; 1 / 0.0 > 0 ? "w1" : "w2"`, true},
	{`1 < 2 == true ? "w1" : "w2"`, true},
	{`"a" < "b" ? "w1" : "w2"`, true},
	// Nil, ties, empty lists, strings.
	{`nil`, true},
	{`nil ?? "w1"`, true},
	{`find(candidates, .id == "nope") ?? "w1"`, true},
	{`find(candidates, .id == "nope") == nil ? "w1" : "w2"`, true},
	{`"w" + "1"`, true}, // folded by the optimizer
	{`filter(candidates, .in_flight == 0 && .buffer_depth == 0)[0] ?? "none"`, true},
	{`let idle = filter(candidates, .in_flight == 0 || "gpu" in .tags); len(idle) > 0 ? idle[0].id : nil`, true},
	{`filter(filter(candidates, .available > 0), "eu" in .tags)[0].id`, true},
	{`find(candidates, any(.tags, # == "eu") && count(candidates, .available > 0) > 1)`, true},
	{`find(candidates, len(filter(candidates, .in_flight < 2)) > 1)`, true},
	{`reduce(filter(candidates, "gpu" in .tags), #.in_flight <= #acc.in_flight ? # : #acc, nil)`, true},
	// What falls back at run time.
	{`candidates[0].id`, true},
	{`candidates[99].id`, true},
	{`reduce(filter(candidates, "gpu" in .tags), # )`, true},
	{`candidates[0].in_flight % 0 == 0 ? "w1" : "w2"`, true},
	{`find(candidates, .in_flight > 3)?.id`, true},
	// Outside the subset.
	{`map(candidates, .id)[0]`, false},
	{`sortBy(candidates, .in_flight)[0]`, false},
	{`fromJSON(request.input).region == "eu" ? "w1" : nil`, false},
	{`len(1..3) > 0 ? "w1" : nil`, false},
	{`string(len(candidates))`, false},
	{`sum(candidates, .in_flight) > 3 ? "w1" : "w2"`, true},
	{`sum(candidates, .in_flight * 0.5) > 3 ? "w1" : "w2"`, true},
	{`sum(map(candidates, .buffer_depth)) >= 4 ? "w1" : "w2"`, true},
	{`sum(candidates, .id) == "" ? "w1" : "w2"`, true},
	{`sum(candidates[0].tags, 1) > 1 ? "w1" : "w2"`, true},
	{`let avg = sum(candidates, .in_flight) / len(candidates); find(candidates, .in_flight <= avg)`, true},
	{`upper(request.activity_type)`, false},
	// The observed figures and the helpers that read them.
	{`p2cEwma(candidates)`, true},
	{`p2cEwma(filter(candidates, .available > 0))`, true},
	{`leastLatency(withTag(candidates, "gpu"))`, true},
	{`let h = healthy(candidates, 0.25); leastLoaded(len(h) > 0 ? h : candidates)`, true},
	{`leastLatency(healthy(filter(candidates, .exits < 3), 0))`, true},
	{`healthy(candidates, 1)[0]`, true},
	{`healthy(candidates, request.attempt)[-1]`, true},
	{`len(healthy(candidates, nil)) > 0 ? "w1" : "w2"`, true}, // falls back at run time: the VM fails the call
	{`find(candidates, .latency_peak_ewma > .latency_ewma * 2 && .error_rate < 0.5)`, true},
	{`sum(candidates, .latency_ewma) / max(len(candidates), 1) > 0.01 ? leastLatency(candidates) : p2cEwma(candidates)`, true},
	{`reduce(candidates, #.exits + #.in_flight < #acc.exits + #acc.in_flight ? # : #acc, candidates[0])`, true},
}

// TestDiff runs the table both ways.
func TestDiff(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range diffCases {
		p := compilePair(t, tc.src)
		if p == nil {
			t.Errorf("%s: exprrt refuses it", tc.src)
			continue
		}
		if (p.fast != nil) != tc.fast {
			t.Errorf("%s: on the fast path %v, want %v (%v)", tc.src, p.fast != nil, tc.fast, p.why)
		}
		decided := 0
		for range 200 {
			if p.check(t, randomSelection(r)) {
				decided++
			}
		}
		t.Logf("%s: decided %d of 200 on the fast path", strings.ReplaceAll(tc.src, "\n", " "), decided)
	}
}

// TestShippedScripts runs every shipped expr script both ways; each must be
// on the fast path and decide there.
func TestShippedScripts(t *testing.T) {
	files, _ := filepath.Glob("../../../scripts/*.expr")
	more, _ := filepath.Glob("../../../testdata/**/*.expr")
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
		if decided != 300 {
			t.Errorf("%s decided %d of 300 calls on the fast path, want all (%v)", filepath.Base(file), decided, p.why)
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
