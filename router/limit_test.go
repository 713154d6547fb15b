package router_test

import (
	"context"
	"errors"
	"strings"
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
// context) rather than run; a call that waited is not charged for the wait;
// under a bound that is not reached, a call runs at once.
func TestConcurrentCallsAreBounded(t *testing.T) {
	in := selection(t, worker("w1", 0, 1, 0))
	loop := in
	loop.WorkflowID = "loop"

	s := limited(t, 1, time.Minute)
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

	// A call that waits longer than its deadline for its place still runs
	// in full once it has it.
	const timeout = 100 * time.Millisecond
	s = limited(t, 1, timeout)
	go func() { _, err := s.Select(context.Background(), loop); done <- err }()
	eventually(t, func() bool { return s.Running() == 1 })
	start := time.Now()
	d, err = s.Select(context.Background(), in)
	if err != nil || d.WorkerID != "w1" {
		t.Fatalf("a call that waited %s for its place: %+v, %v; want w1", time.Since(start), d, err)
	}
	if err := <-done; !errors.Is(err, router.ErrScriptTimeout) {
		t.Fatalf("the looping call: %v", err)
	}

	// Under a bound of 2, with one place held, a call runs at once.
	s = limited(t, 2, time.Minute)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() { _, err := s.Select(ctx, loop); done <- err }()
	eventually(t, func() bool { return s.Running() == 1 })
	if d, err := s.Select(context.Background(), in); err != nil || d.WorkerID != "w1" {
		t.Fatalf("with a place free: %+v, %v", d, err)
	}
	cancel()
	<-done
}

// TestTimingOutScriptRunsAlone: once a channel's calls keep timing out,
// its script runs one call at a time: another call waits for the looping
// one (and gives up with its context); it runs freely again once calls
// finish in time.
func TestTimingOutScriptRunsAlone(t *testing.T) {
	in := selection(t, worker("w1", 0, 1, 0))
	loop := in
	loop.WorkflowID = "loop"

	// Real timeouts count.
	s := limited(t, 0, 20*time.Millisecond)
	for range 2 {
		if _, err := s.Select(context.Background(), loop); !errors.Is(err, router.ErrScriptTimeout) {
			t.Fatalf("%v, want a timeout", err)
		}
	}
	if !s.Solo() {
		t.Fatal("not alone after 2 timeouts in a row")
	}

	// Alone, a call waits for the one running.
	s = limited(t, 0, time.Minute)
	s.Strike(true)
	s.Strike(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := s.Select(ctx, loop); done <- err }()
	eventually(t, func() bool { return s.Running() == 1 })
	waitCtx, stop := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer stop()
	if d, err := s.Select(waitCtx, in); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call while a timing-out script runs: %+v, %v; want it to wait and give up", d, err)
	}
	cancel()
	<-done

	// A call that waits a whole deadline for its turn is not run: the
	// channel sheds its load rather than queue it.
	shed := limited(t, 0, 20*time.Millisecond)
	shed.Strike(true)
	shed.Strike(true)
	release := shed.TakeSolo()
	_, err := shed.Select(context.Background(), in)
	release()
	if !errors.Is(err, router.ErrScriptThrottled) || errors.Is(err, router.ErrScriptTimeout) ||
		!strings.HasPrefix(err.Error(), "limited.lua (lua ") || !strings.Contains(err.Error(), "it runs one at a time") {
		t.Fatalf("a call that waited its whole deadline: %v; want ErrScriptThrottled naming the script", err)
	}

	// Calls that finish in time free it again.
	for i := 0; s.Solo(); i++ {
		if i == 8 {
			t.Fatal("still alone after 8 calls in time")
		}
		if _, err := s.Select(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	if s.Running() != 0 {
		t.Errorf("%d places held after the calls", s.Running())
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
