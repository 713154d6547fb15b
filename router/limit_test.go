package router_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/router"
)

// limited compiles a script that loops for workflow "loop" and picks the
// first candidate otherwise, with at most max calls at once.
func limited(t *testing.T, max int, timeout time.Duration) *router.Script {
	t.Helper()
	src := `function route(r, c)
  if r.workflow_id == "loop" then while true do end end
  return c[1].id
end`
	p, err := router.NewCompiler(router.Limits{MaxConcurrentCalls: max}).Compile(router.Lua, "limited.lua", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return router.NewScript(p, "limited.lua", timeout)
}

// TestConcurrentCallsAreBounded: while a channel's calls hold every place,
// another call of the same channel waits for one (and gives up with its
// context) rather than run; a call that waited is not charged for the wait.
func TestConcurrentCallsAreBounded(t *testing.T) {
	s := limited(t, 1, time.Minute)
	in := selection(t, worker("w1", 0, 1, 0))
	loop := in
	loop.WorkflowID = "loop"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := s.Select(ctx, loop); done <- err }()
	eventually(t, func() bool { return s.Running() == 1 })

	waitCtx, stop := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer stop()
	d, err := s.Select(waitCtx, in)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, router.ErrScriptTimeout) {
		t.Fatalf("a call while the only place is held: %+v, %v; want it to wait and give up with its context", d, err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the looping call: %v", err)
	}
	if d, err := s.Select(context.Background(), in); err != nil || d.WorkerID != "w1" {
		t.Fatalf("once the place is free: %+v, %v", d, err)
	}

	// Without a bound, the same call runs at once.
	free := limited(t, -1, time.Minute)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() { _, err := free.Select(ctx, loop); done <- err }()
	if d, err := free.Select(context.Background(), in); err != nil || d.WorkerID != "w1" {
		t.Fatalf("unbounded: %+v, %v", d, err)
	}
	cancel()
	<-done
}

// TestTimingOutScriptRunsAlone: after calls in a row time out, a channel's
// script runs one call at a time, until a call finishes in time.
func TestTimingOutScriptRunsAlone(t *testing.T) {
	s := limited(t, 4, 100*time.Millisecond)
	in := selection(t, worker("w1", 0, 1, 0))
	loop := in
	loop.WorkflowID = "loop"
	for i := range 3 {
		if s.Solo() {
			t.Fatalf("alone after %d timeouts", i)
		}
		if _, err := s.Select(context.Background(), loop); !errors.Is(err, router.ErrScriptTimeout) {
			t.Fatalf("call %d: %v, want a timeout", i, err)
		}
	}
	if !s.Solo() {
		t.Fatal("not alone after 3 timeouts in a row")
	}
	if _, err := s.Select(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if s.Solo() {
		t.Error("still alone after a call finished in time")
	}
}

// eventually polls cond until it holds; the deadline only guards a hang.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("never happened")
		}
		time.Sleep(time.Millisecond)
	}
}
