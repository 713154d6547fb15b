package call_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/router/internal/call"
)

var errFallback = errors.New("fallback")

// ends runs f and returns the error its panic (if any) ends the call with.
func ends(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = call.Recovered(r, errFallback)
		}
	}()
	f()
	return nil
}

// A watch looks at the clock and the context every so many ticks, not
// between; a passed deadline, an ended context, a bail and a fault each
// end the call with their own error.
func TestWatch(t *testing.T) {
	var w call.Watch
	w.Reset(context.Background(), time.Now().Add(-time.Second), 4)
	if err := ends(func() { w.Tick(); w.Tick(); w.Tick() }); err != nil {
		t.Fatalf("three ticks of four looked at the clock: %v", err)
	}
	if err := ends(w.Tick); !errors.Is(err, call.ErrTimeout) {
		t.Fatalf("the fourth tick: %v, want a timeout", err)
	}

	w.Reset(context.Background(), time.Time{}, 1)
	if err := ends(func() { w.Tick(); w.Check() }); err != nil {
		t.Fatalf("no deadline: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.Reset(ctx, time.Now().Add(time.Hour), 1)
	if err := ends(w.Check); !errors.Is(err, context.Canceled) {
		t.Fatalf("an ended context: %v", err)
	}

	if err := ends(func() { call.Bail("a string + 1") }); err != errFallback {
		t.Fatalf("a bail: %v, want the fallback itself", err)
	}
	if err := ends(func() { panic("index out of range") }); !errors.Is(err, errFallback) || err == errFallback {
		t.Fatalf("a fault: %v, want the fallback wrapping it", err)
	}
}
