package router

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
	p, err := NewCompiler(Limits{}).Compile(Lua, "quick.lua", []byte(`function route(r, c) return c[1].id end`))
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 100 * time.Millisecond
	p.lua.mu.Lock()
	p.lua.free = nil // the call must make its state
	p.lua.mu.Unlock()
	made := false
	p.lua.madeState = func() { made = true; time.Sleep(3 * timeout) }
	s := NewScript(p, "quick.lua", timeout)
	ch, _ := engine.DispatchChannel("prod", "email")
	in := engine.Selection{WorkflowID: "wf", Channel: ch, Attempt: 1,
		Candidates: []engine.Worker{{ID: "w1", State: engine.ConsumerStateView{ID: "w1", MaxInFlight: 1}}}}
	d, err := s.Select(context.Background(), in)
	if !made {
		t.Fatal("the call did not make a state")
	}
	if err != nil || d.WorkerID != "w1" {
		t.Fatalf("a call whose state took %s to make: %+v, %v; want w1 (the deadline is %s of the script's own time)", 3*timeout, d, err, timeout)
	}
}
