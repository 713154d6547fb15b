package luart

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
)

// TestFastPathRunaway: a runaway loop in the fast path's subset runs there,
// and is stopped at its timeout all the same.
func TestFastPathRunaway(t *testing.T) {
	p, err := Compile([]byte(`function route(r, c) local n = 0 while true do n = n + 1 end end`), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := p.FastPath(); !ok {
		t.Fatalf("not on the fast path: %v", why)
	}
	const timeout = 20 * time.Millisecond
	start := time.Now()
	_, err = p.Run(context.Background(), engine.Selection{}, timeout)
	if !errors.Is(err, call.ErrTimeout) || time.Since(start) > timeout+time.Second {
		t.Errorf("%v after %s, want a timeout after %s", err, time.Since(start), timeout)
	}
}

// TestFastPathTimeoutBeforeFallback: a call that reaches its deadline on the
// fast path, before the error that would send it to the interpreter, is a
// timeout: it is not run again with a second timeout.
func TestFastPathTimeoutBeforeFallback(t *testing.T) {
	p, err := Compile([]byte(`function route(r, c)
  local n = 0
  while n < 1e12 do n = n + 1 end
  return c[1].id + 1
end`), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 30 * time.Millisecond
	start := time.Now()
	_, err = p.Run(context.Background(), engine.Selection{}, timeout)
	if !errors.Is(err, call.ErrTimeout) || time.Since(start) > timeout+time.Second {
		t.Errorf("%v after %s, want a timeout after %s", err, time.Since(start), timeout)
	}
}

// TestFastPathFallbackError: a script error on the fast path is reported
// as the interpreter reports it.
func TestFastPathFallbackError(t *testing.T) {
	p, err := Compile([]byte("function route(r, c)\n  if c[1].id < 3 then return c[1] end\nend"), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	sel := engine.Selection{Candidates: []engine.Worker{{State: engine.ConsumerStateView{ID: "w1"}}}}
	_, err = p.Run(context.Background(), sel, time.Second)
	var se *call.Error
	if !errors.As(err, &se) || se.Line != 2 {
		t.Errorf("err = %v, want the interpreter's error at line 2", err)
	}
}
