package call

import (
	"context"
	"fmt"
	"time"
)

// Watch bounds a call of compiled Go code (packages luafast and exprfast)
// as the interpreters bound theirs: every so many ticks (loop iterations)
// it looks at the call's context and deadline, and ends the call by
// panicking with a stop that [Recovered] turns into the call's error. The
// compiled code ends a call it does not model the same way, with [Bail].
type Watch struct {
	ctx      context.Context
	deadline time.Time // zero: none
	mask     uint32    // ticks between two looks, less one
	ticks    uint32
}

// Reset arms w for a call under ctx until deadline (the zero time for
// none), looking every every ticks: a power of two.
func (w *Watch) Reset(ctx context.Context, deadline time.Time, every uint32) {
	w.ctx, w.deadline, w.mask, w.ticks = ctx, deadline, every-1, 0
}

// Clear lets go of the call's context.
func (w *Watch) Clear() { w.ctx = nil }

// Tick counts one iteration and, every so many, looks at the context and
// the clock (see [Watch.Check]).
func (w *Watch) Tick() {
	w.ticks++
	if w.ticks&w.mask == 0 {
		w.Check()
	}
}

// Check ends the call if its context ended or its deadline passed.
func (w *Watch) Check() {
	if err := w.ctx.Err(); err != nil {
		panic(stop{err})
	}
	if !w.deadline.IsZero() && !time.Now().Before(w.deadline) {
		panic(stop{ErrTimeout})
	}
}

// stop is the panic that ends a call at its deadline or when its context
// ends.
type stop struct{ err error }

// bailout is the panic that abandons a call the compiled code does not
// model.
type bailout struct{ why string }

// Bail abandons the call: the interpreter will run it.
func Bail(why string) { panic(bailout{why}) }

// Recovered returns the error that a compiled call which panicked with r
// ends with: the stop's ([ErrTimeout] or the context's), fallback for a
// bail, and fallback wrapping r for anything else (a fault of the compiled
// code, which the interpreter still decides right).
func Recovered(r any, fallback error) error {
	switch r := r.(type) {
	case stop:
		return r.err
	case bailout:
		return fallback
	}
	return fmt.Errorf("%w: %v", fallback, r)
}
