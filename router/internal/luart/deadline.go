package luart

import (
	"context"
	"errors"
	"time"
)

// errDeadline is what a stopped script sees; the caller reports call.ErrTimeout.
var errDeadline = errors.New("routing script deadline exceeded")

// callContext is the context a script call runs under. gopher-lua asks the
// state's context for Done before every instruction; instead of arming a
// timer per call (a timer and a context cost about a microsecond and several
// allocations), callContext compares the clock with the deadline every
// checkEvery calls to Done, and closes its channel once the deadline has
// passed or the caller's context has ended. One is reused for every call of a
// pooled state until it fires; a state whose context fired is discarded.
type callContext struct {
	parent   context.Context
	deadline time.Time
	done     chan struct{}
	err      error
	calls    uint32
}

const checkEvery = 256

func newCallContext() *callContext { return &callContext{done: make(chan struct{})} }

// reset arms c for a new call; c must not have fired.
func (c *callContext) reset(parent context.Context, deadline time.Time) {
	c.parent, c.deadline, c.calls = parent, deadline, 0
}

// fired reports whether c stopped its call, and why.
func (c *callContext) fired() error { return c.err }

// check closes done if the deadline passed or the parent ended.
func (c *callContext) check() {
	if c.err != nil {
		return
	}
	if err := c.parent.Err(); err != nil {
		c.err = err
		close(c.done)
		return
	}
	if !time.Now().Before(c.deadline) {
		c.err = errDeadline
		close(c.done)
	}
}

// Deadline implements [context.Context].
func (c *callContext) Deadline() (time.Time, bool) { return c.deadline, true }

// Done implements [context.Context]; it is where the clock is read.
func (c *callContext) Done() <-chan struct{} {
	c.calls++
	if c.calls%checkEvery == 0 {
		c.check()
	}
	return c.done
}

// Err implements [context.Context].
func (c *callContext) Err() error {
	c.check()
	return c.err
}

// Value implements [context.Context].
func (c *callContext) Value(key any) any { return c.parent.Value(key) }
