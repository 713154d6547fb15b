package luart

import (
	"context"
	"errors"
	"testing"
	"time"
)

// maxInstructionsPastDeadline is what the runaway tests rely on without
// saying it: gopher-lua calls Done once per VM instruction, so a script
// runs at most this many instructions (about 20 µs) past its deadline or
// its caller's cancellation.
const maxInstructionsPastDeadline = 1024

// TestCallContextReadsTheClockOften checks, without a clock in the test,
// that a call context sees a passed deadline or an ended parent within
// maxInstructionsPastDeadline calls to Done, and says which it was.
func TestCallContextReadsTheClockOften(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		parent   context.Context
		deadline time.Time
		want     error
	}{
		{"deadline passed", context.Background(), time.Now().Add(-time.Second), errDeadline},
		{"parent ended", ended, time.Now().Add(time.Hour), context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCallContext()
			c.reset(tc.parent, tc.deadline)
			if callsUntilDone(c, maxInstructionsPastDeadline) > maxInstructionsPastDeadline {
				t.Fatalf("Done still open after %d calls", maxInstructionsPastDeadline)
			}
			if !errors.Is(c.fired(), tc.want) {
				t.Errorf("fired() = %v, want %v", c.fired(), tc.want)
			}
		})
	}

	// A live call is not stopped.
	c := newCallContext()
	c.reset(context.Background(), time.Now().Add(time.Hour))
	if calls := callsUntilDone(c, 4*maxInstructionsPastDeadline); calls <= 4*maxInstructionsPastDeadline {
		t.Fatalf("Done closed at call %d, before the deadline", calls)
	}
	if c.fired() != nil || c.Err() != nil {
		t.Errorf("fired() = %v, Err() = %v before the deadline", c.fired(), c.Err())
	}
}

// callsUntilDone calls c.Done as gopher-lua does, once per instruction, up
// to limit times, and returns the number of the call that found it closed
// (limit+1 if none did).
func callsUntilDone(c *callContext, limit int) int {
	for n := 1; n <= limit; n++ {
		select {
		case <-c.Done():
			return n
		default:
		}
	}
	return limit + 1
}
