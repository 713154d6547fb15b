package router_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// participant stands for a worker's process in a selection.
type participant struct{ id string }

func (p participant) ID() string { return p.id }

// TestSlotKeepsTheLastDecisions: the ring keeps decisions that did not
// fail, oldest first, without the workers' processes and without inputs
// over 64 KiB: every one until it is full, then about one in eight, so
// that what it holds comes from the last decisions.
func TestSlotKeepsTheLastDecisions(t *testing.T) {
	const size = 16
	slot := router.NewSlot(compile(t, router.Lua, `
function route(r, c)
  if r.workflow_id == "wf-fail" then error("no") end
  return c[#c].id
end`), router.KeepRecent(size))
	if got := slot.Recent(); len(got) != 0 {
		t.Fatalf("a new slot holds %d decisions", len(got))
	}
	decide := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			in := selection(t, worker("w1", 0, 1, 0), worker("w2", 0, 1, 0))
			in.WorkflowID = fmt.Sprintf("wf-%d", i)
			in.Candidates[0].Participant = participant{"w1"}
			in.Excluded = []string{"w0"}
			if _, err := slot.Select(context.Background(), in); err != nil {
				t.Fatal(err)
			}
		}
	}
	seq := func(s router.Sample) int {
		var n int
		fmt.Sscanf(s.Selection.WorkflowID, "wf-%d", &n)
		return n
	}
	decide(0, size-1)
	for _, in := range []engine.Selection{selection(t, worker("w1", 0, 1, 0)), selection(t, worker("w1", 0, 1, 0))} {
		in.WorkflowID = "wf-fail"
		if _, err := slot.Select(context.Background(), in); err == nil {
			t.Fatal("wf-fail did not fail")
		}
	}
	big := selection(t, worker("w1", 0, 1, 0))
	big.WorkflowID, big.Request.Input.Data = "wf-big", []byte(`"`+strings.Repeat("x", 64<<10)+`"`)
	if _, err := slot.Select(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	got := slot.Recent()
	if len(got) != size-1 {
		t.Fatalf("%d decisions kept, want %d: every one but those that failed or carried a big input", len(got), size-1)
	}
	for i, s := range got {
		if seq(s) != i || s.Chosen != "w2" || len(s.Selection.Candidates) != 2 || s.Selection.Candidates[0].Participant != nil ||
			len(s.Selection.Excluded) != 1 {
			t.Fatalf("decision %d = %+v", i, s)
		}
	}

	// Full, it keeps about one in eight: after thousands more, what it
	// holds is from those, in order.
	decide(size-1, 4000)
	got = slot.Recent()
	if len(got) != size {
		t.Fatalf("%d decisions kept, want %d", len(got), size)
	}
	for i, s := range got {
		if seq(s) < size || (i > 0 && seq(s) <= seq(got[i-1])) {
			t.Fatalf("kept %s at %d: want later decisions, oldest first", s.Selection.WorkflowID, i)
		}
	}
	// What Recent returns is a copy.
	got[0].Selection.Candidates[0].State.ID = "changed"
	if slot.Recent()[0].Selection.Candidates[0].State.ID != "w1" {
		t.Error("Recent returned the ring's own candidates")
	}

	// Without KeepRecent, nothing is kept.
	bare := router.NewSlot(compile(t, router.Lua, `function route(r, c) return c[1].id end`))
	if _, err := bare.Select(context.Background(), selection(t, worker("w1", 0, 1, 0))); err != nil {
		t.Fatal(err)
	}
	if got := bare.Recent(); len(got) != 0 {
		t.Errorf("a slot without KeepRecent kept %d decisions", len(got))
	}
}

// TestSlotCopiesWhatItKeeps: the caller may reuse its input and its
// candidates' tags once a decision is made; the ring keeps what was seen.
func TestSlotCopiesWhatItKeeps(t *testing.T) {
	slot := router.NewSlot(compile(t, router.Lua, `function route(r, c) return c[1].id end`), router.KeepRecent(4))
	in := selection(t, worker("w1", 0, 1, 0, "eu", "gpu"))
	in.Request.Input.Data = []byte(`{"a":1}`)
	if _, err := slot.Select(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	copy(in.Request.Input.Data, `{"b":2}`)
	in.Candidates[0].State.Tags[0] = "us"
	got := slot.Recent()[0].Selection
	if string(got.Request.Input.Data) != `{"a":1}` || got.Candidates[0].State.Tags[0] != "eu" {
		t.Errorf("kept input %s and tags %v; want what the decision saw", got.Request.Input.Data, got.Candidates[0].State.Tags)
	}
}

// TestSlotRingUnderConcurrentDecisions: decisions from many goroutines and
// reads of the ring at once (run with -race), every kept decision whole.
func TestSlotRingUnderConcurrentDecisions(t *testing.T) {
	slot := router.NewSlot(compile(t, router.Lua, `function route(r, c) return c[#c].id end`), router.KeepRecent(8))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				in := selection(t, worker("w1", 0, 1, 0, "t"), worker(fmt.Sprintf("g%d", g), i, 1000, 0))
				in.WorkflowID = fmt.Sprintf("wf-%d-%d", g, i)
				if _, err := slot.Select(context.Background(), in); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 50 {
		for _, s := range slot.Recent() {
			c := s.Selection.Candidates
			if len(c) != 2 || s.Chosen != c[1].ID() || c[0].State.Tags[0] != "t" ||
				s.Selection.WorkflowID != fmt.Sprintf("wf-%s-%d", strings.TrimPrefix(c[1].ID(), "g"), c[1].State.InFlight) {
				t.Fatalf("a torn decision: %+v", s)
			}
		}
	}
	wg.Wait()
	if got := slot.Recent(); len(got) != 8 {
		t.Errorf("%d kept, want 8", len(got))
	}
}

func TestGate(t *testing.T) {
	recent := make([]router.Sample, 10)
	for i := range recent {
		in := selection(t, worker("w1", 0, 1, 0), worker("w2", 0, 1, 0))
		in.WorkflowID = fmt.Sprintf("wf-%d", i)
		in.Request.WorkflowID = in.WorkflowID
		recent[i] = router.Sample{Selection: in, Chosen: "w1"}
	}
	for _, tc := range []struct {
		name, src string
		changed   int
		refused   string // the start of the failing case and its cause, or "" to pass
		timeout   bool
	}{
		{"same decisions", `function route(r, c) return c[1].id end`, 0, "", false},
		{"changes some", `function route(r, c) if r.workflow_id == "wf-3" or r.workflow_id == "wf-7" then return c[2].id end return c[1].id end`, 2, "", false},
		{"none is a decision", `function route(r, c) return nil end`, 10, "", false},
		{"runtime error on one", `function route(r, c) if r.workflow_id == "wf-4" then return c[9].id end return c[1].id end`,
			0, "refused by the reload gate: on recent decision 5 of 10 (workflow wf-4, attempt 1, candidates [w1 0/1, w2 0/1]): test.lua:1:", false},
		{"unknown id", `function route(r, c) return "w9" end`,
			0, "refused by the reload gate: on recent decision 1 of 10 (workflow wf-0, attempt 1, candidates [w1 0/1, w2 0/1]): test.lua (lua ", false},
		{"loop", `function route(r, c) while true do end end`, 0, "refused by the reload gate: on recent decision 1 of 10", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := router.Gate(context.Background(), compileTimeout(t, tc.src, 200*time.Millisecond), recent, false)
			if tc.refused == "" {
				if err != nil || rep.Changed != tc.changed || rep.Decisions != 10 {
					t.Fatalf("report %+v, %v; want %d of 10 changed", rep, err, tc.changed)
				}
				want := fmt.Sprintf("would change %d of the last 10 decisions", tc.changed)
				if tc.name == "none is a decision" {
					want += ", 10 of them from a worker to none"
				}
				if rep.String() != want || rep.Worrying() != (tc.name == "none is a decision") {
					t.Errorf("report says %q (worrying: %v), want %q", rep, rep.Worrying(), want)
				}
				return
			}
			var ge *router.GateError
			if !errors.As(err, &ge) || !errors.Is(err, router.ErrRefused) || !strings.HasPrefix(err.Error(), tc.refused) {
				t.Fatalf("err = %v\nwant a GateError starting %q", err, tc.refused)
			}
			if tc.timeout != errors.Is(err, router.ErrScriptTimeout) {
				t.Errorf("timeout %v, want %v: %v", !tc.timeout, tc.timeout, err)
			}
		})
	}
}

func TestSyntheticSamples(t *testing.T) {
	ch := channel(t)
	samples := router.SyntheticSamples(ch, []engine.ConsumerStateView{{ID: "a", MaxInFlight: 4, Tags: []string{"eu"}}, {ID: "b", MaxInFlight: 2}})
	var got []string
	for _, s := range samples {
		var cands []string
		for _, c := range s.Selection.Candidates {
			cands = append(cands, fmt.Sprintf("%s %d/%d", c.ID(), c.State.InFlight, c.State.MaxInFlight))
		}
		got = append(got, fmt.Sprintf("attempt %d [%s] excluded %v", s.Selection.Attempt, strings.Join(cands, ", "), s.Selection.Excluded))
	}
	want := []string{
		"attempt 1 [a 0/4, b 0/2] excluded []",
		"attempt 1 [a 2/4, b 1/2] excluded []",
		"attempt 1 [a 4/4, b 2/2] excluded []",
		"attempt 2 [b 0/2] excluded [a]",
		"attempt 2 [a 0/4] excluded [b]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("samples:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Every shipped-style policy passes on them, and one that hard-codes
	// an id does not.
	for src, ok := range map[string]bool{
		`function route(r, c) return dispatch.least_loaded(c) end`: true,
		`function route(r, c) return "a" end`:                      false,
	} {
		_, err := router.Gate(context.Background(), compile(t, router.Lua, src), samples, true)
		if (err == nil) != ok {
			t.Errorf("%s: err = %v", src, err)
		}
		if err != nil && !strings.Contains(err.Error(), "on synthetic decision 4 of 5") {
			t.Errorf("err = %v, want it on the synthetic decision that excludes a", err)
		}
	}
	if got := router.SyntheticSamples(ch, nil); len(got) != 6 || got[0].Selection.Candidates[2].ID() != "w3" {
		t.Errorf("with no workers: %d samples", len(got))
	}
}

func compileTimeout(t testing.TB, src string, timeout time.Duration) *router.Script {
	t.Helper()
	p, err := router.NewCompiler(router.Limits{}).Compile(router.Lua, "test.lua", []byte(src))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return router.NewScript(p, "test.lua", timeout)
}

// TestGateStoppedIsNoRefusal: a gate whose context ends (the watcher
// stopping) reports that, not a refusal of the version.
func TestGateStoppedIsNoRefusal(t *testing.T) {
	samples := router.SyntheticSamples(channel(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := router.Gate(ctx, compileTimeout(t, `function route(r, c) while true do end end`, time.Minute), samples, true)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, router.ErrRefused) {
		t.Fatalf("err = %v; want the context's error, no refusal", err)
	}
}

// TestSyntheticSamplesAreBounded: a channel of many workers gets a bounded
// number of samples that exclude one worker.
func TestSyntheticSamplesAreBounded(t *testing.T) {
	workers := make([]engine.ConsumerStateView, 1000)
	for i := range workers {
		workers[i] = engine.ConsumerStateView{ID: fmt.Sprintf("w%d", i), MaxInFlight: 1}
	}
	samples := router.SyntheticSamples(channel(t), workers)
	if len(samples) != 3+16 {
		t.Fatalf("%d samples, want 19", len(samples))
	}
	if first, last := samples[3].Selection.Excluded[0], samples[len(samples)-1].Selection.Excluded[0]; first != "w0" || last != "w999" {
		t.Errorf("excluded %s first and %s last; want the first and the last workers", first, last)
	}
}

// TestGateRefusesANativeRouterChoosingAStranger: the gate checks any
// router's decision as the engine does, not only a script's: an id that is
// not a candidate is refused, and choosing a full worker is not.
func TestGateRefusesANativeRouterChoosingAStranger(t *testing.T) {
	samples := router.SyntheticSamples(channel(t), nil)
	for _, tc := range []struct {
		name    string
		choose  func(engine.Selection) string
		refused bool
	}{
		{"a stranger", func(engine.Selection) string { return "ghost" }, true},
		{"the first, full or not", func(in engine.Selection) string { return in.Candidates[0].ID() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := router.NewNative("test", router.Policy(tc.choose))
			_, err := router.Gate(context.Background(), r, samples, true)
			if !tc.refused {
				if err != nil {
					t.Fatalf("gate refused: %v", err)
				}
				return
			}
			if !errors.Is(err, router.ErrBadDecision) || !errors.Is(err, engine.ErrRouting) || !strings.Contains(err.Error(), `chose "ghost", which is not a candidate`) {
				t.Fatalf("err = %v, want a bad decision naming ghost", err)
			}
		})
	}
}
