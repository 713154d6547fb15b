package luart

import (
	"context"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// TestDeadlineStartsWithTheScript: the time it takes to make a Lua state
// (longer than many calls, and longer still on a loaded machine) is not
// charged to the call's deadline.
func TestDeadlineStartsWithTheScript(t *testing.T) {
	p, err := Compile([]byte(`function route(r, c) return c[1].id end`), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	p = p.Interpreted() // the fast path makes no state
	const timeout = 100 * time.Millisecond
	p.mu.Lock()
	p.free = nil // the call must make its state
	p.mu.Unlock()
	made := false
	p.madeState = func() { made = true; time.Sleep(3 * timeout) }
	ch, _ := engine.DispatchChannel("prod", "email")
	in := engine.Selection{WorkflowID: "wf", Channel: ch, Attempt: 1,
		Candidates: []engine.Worker{{State: engine.ConsumerStateView{ID: "w1", MaxInFlight: 1}}}}
	res, err := p.Run(context.Background(), in, timeout)
	if !made {
		t.Fatal("the call did not make a state")
	}
	if err != nil || res.ID != "w1" {
		t.Fatalf("a call whose state took %s to make: %+v, %v; want w1 (the deadline is %s of the script's own time)", 3*timeout, res, err, timeout)
	}
}
