package exprrt

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
)

// bigSelection returns n candidates, all with a free slot.
func bigSelection(n int) engine.Selection {
	var sel engine.Selection
	for i := range n {
		sel.Candidates = append(sel.Candidates, engine.Worker{State: engine.ConsumerStateView{
			ID: fmt.Sprintf("w%d", i), InFlight: i % 3, MaxInFlight: 4}})
	}
	return sel
}

// A million visits of candidates: far longer than the timeouts below, in
// the VM and on the fast path alike. The memory budget is lifted so that
// the time, not the budget, ends the call.
const slowScript = `reduce(candidates, #acc + count(candidates, .in_flight >= 0), 0) > 5 ? "w0" : nil`

var slowLimits = Limits{MaxNodes: 10_000, MemoryBudget: 1 << 40, PoolSize: 1}

// TestFastPathTimeout: a script that takes longer than its timeout runs on
// the fast path and times out there, soon after its deadline, as it does
// in the VM (which can only tell when it ends).
func TestFastPathTimeout(t *testing.T) {
	p, err := Compile([]byte(slowScript), slowLimits)
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := p.FastPath(); !ok {
		t.Fatalf("not on the fast path: %v", why)
	}
	sel := bigSelection(1000)
	const timeout = 2 * time.Millisecond
	start := time.Now()
	_, err = p.Run(context.Background(), sel, timeout)
	if elapsed := time.Since(start); !errors.Is(err, call.ErrTimeout) || elapsed > timeout+time.Second {
		t.Errorf("fast path: %v after %s, want a timeout soon after %s", err, elapsed, timeout)
	}
	if _, err := p.Interpreted().Run(context.Background(), sel, timeout); !errors.Is(err, call.ErrTimeout) {
		t.Errorf("VM: %v, want a timeout too", err)
	}
}

// TestFastPathTimeoutBeforeFallback: a call that reaches its deadline on
// the fast path, before what would send it to the VM, is a timeout: it is
// not run again with a second timeout.
func TestFastPathTimeoutBeforeFallback(t *testing.T) {
	p, err := Compile([]byte(`reduce(candidates, #acc + count(candidates, .in_flight >= 0), 0) > 5 ? candidates[5000].id : nil`), slowLimits)
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 2 * time.Millisecond
	start := time.Now()
	_, err = p.Run(context.Background(), bigSelection(1000), timeout)
	if elapsed := time.Since(start); !errors.Is(err, call.ErrTimeout) || elapsed > timeout+time.Second {
		t.Errorf("%v after %s, want a timeout soon after %s", err, elapsed, timeout)
	}
}

// TestFastPathContext: the fast path answers a call whose context has
// ended as the VM does (the VM does not look at it: the router does,
// before the call), so that which path ran does not change the answer.
func TestFastPathContext(t *testing.T) {
	p, err := Compile([]byte(slowScript), slowLimits)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fast, fastErr := p.Run(ctx, bigSelection(1000), time.Minute)
	vm, vmErr := p.Interpreted().Run(ctx, bigSelection(1000), time.Minute)
	if fast != vm || (fastErr == nil) != (vmErr == nil) {
		t.Errorf("fast path %+v, %v; VM %+v, %v", fast, fastErr, vm, vmErr)
	}
}

// TestFastPathMemoryBudget: a call that would spend the VM's memory
// budget falls back, and the VM refuses it as before.
func TestFastPathMemoryBudget(t *testing.T) {
	p, err := Compile([]byte("let l = reduce(candidates, filter(candidates, .in_flight >= 0), nil);\nlen(l) > 5 ? \"w0\" : nil"),
		Limits{MaxNodes: 10_000, MemoryBudget: 50_000, PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := p.FastPath(); !ok {
		t.Fatalf("not on the fast path: %v", why)
	}
	sel := bigSelection(300)
	_, got := p.Run(context.Background(), sel, time.Minute)
	_, want := p.Interpreted().Run(context.Background(), sel, time.Minute)
	if want == nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("err = %v, want the VM's %v", got, want)
	}
}

// TestFastPathFallbackError: a script error met on the fast path is
// reported as the VM reports it, at its place.
func TestFastPathFallbackError(t *testing.T) {
	p, err := Compile([]byte("let c = filter(candidates, .in_flight > 5);\nc[0].id"), Limits{MaxNodes: 10_000, MemoryBudget: 1_000_000, PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := p.FastPath(); !ok {
		t.Fatalf("not on the fast path: %v", why)
	}
	_, err = p.Run(context.Background(), bigSelection(3), time.Second)
	var se *call.Error
	if !errors.As(err, &se) || se.Line != 2 {
		t.Errorf("err = %v, want the VM's error at line 2", err)
	}
}
