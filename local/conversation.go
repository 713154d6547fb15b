package local

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// errClosed is returned by a conversation used after Close.
var errClosed = errors.New("conversation is closed")

// conversation is one dispatch conversation with in-process workers. The
// link to a worker is its Done channel: Receive selects on it, so an exit is
// observed the moment it happens, without polling.
type conversation struct {
	id      string
	replies *sync.Pool // of empty reply channels, the pool's
	worker  *Worker    // the linked worker
	job     *job       // the current attempt's slot and activity, from Link until its answer
	closed  bool
	used    bool // first was handed out (beside closed: the struct stays within 256 bytes)
	first   job  // the first attempt's job, allocated with the conversation
}

// Link implements [engine.Conversation]: it ends the previous attempt, if
// any (its slot frees), links the worker and takes one of its free slots. A
// worker with none fails with an error wrapping [engine.ErrWorkerFull];
// the conversation is then linked to no worker and holds no slot. Linking a
// worker that already exited succeeds without a slot; Receive then reports
// the exit.
func (c *conversation) Link(_ context.Context, w engine.Worker) error {
	if c.closed {
		return errClosed
	}
	lw, ok := w.Participant.(*Worker)
	if !ok || lw == nil {
		return fmt.Errorf("worker %s is not an in-process worker (participant %T)", w.ID(), w.Participant)
	}
	c.end()
	c.unlink()
	j := &c.first
	if c.used {
		j = new(job)
	}
	if lw.ctx.Err() == nil {
		if !lw.reserve() {
			return fmt.Errorf("worker %s: max in flight %d reached: %w", lw.id, lw.max, engine.ErrWorkerFull)
		}
		j.held.Store(true)
		j.slot = true
	}
	c.worker, c.job, c.used = lw, j, true
	lw.link()
	return nil
}

// unlink ends the link to the current worker, if any.
func (c *conversation) unlink() {
	if c.worker != nil {
		c.worker.unlink()
		c.worker = nil
	}
}

// Send implements [engine.Conversation]: it puts the activity into the slot
// Link took. It never waits: the worker's mailbox has room for every slot.
// A worker that exits meanwhile drops the activity, and Receive reports the
// exit.
func (c *conversation) Send(_ context.Context, msg engine.DispatchRequest) error {
	switch {
	case c.closed:
		return errClosed
	case c.job == nil:
		return fmt.Errorf("conversation %s: send before link", c.id)
	case c.job.state.Load() != jobLinked:
		return fmt.Errorf("conversation %s: worker %s already has its activity", c.id, c.worker.id)
	}
	w, j := c.worker, c.job
	j.ctx, j.cancel = context.WithCancel(w.ctx)
	if w.report {
		j.ctx = context.WithValue(j.ctx, jobKey{}, j)
	}
	j.attempt, j.req = msg.Attempt, msg.Request
	j.sent = w.clock.Now()
	j.reply = c.newReply()
	j.state.Store(jobQueued)
	// Into the mailbox if it has room and the worker runs, as the select
	// below would, without that select's cost, which locks every channel
	// it waits on. (An exited worker's mailbox is left to the select, so
	// that a dead worker's mailbox does not fill with what no executor
	// takes any more.)
	if w.ctx.Err() == nil {
		select {
		case w.mailbox <- j:
			return nil
		default:
		}
	}
	select {
	case w.mailbox <- j:
	case <-w.ctx.Done():
		w.release(j) // the exit frees it, and is Receive's next event
	default:
		// Every activity in the mailbox holds a slot while the worker
		// runs, and this one holds a slot too, so this cannot happen.
		j.state.Store(jobLinked)
		j.cancel()
		return fmt.Errorf("conversation %s: worker %s: no room in the mailbox of a slot it holds", c.id, w.id)
	}
	return nil
}

// newReply returns an empty reply channel with room for one answer: one an
// answered activity left, or a new one.
func (c *conversation) newReply() chan engine.ActivityResult {
	if r, ok := c.replies.Get().(chan engine.ActivityResult); ok {
		return r
	}
	return make(chan engine.ActivityResult, 1)
}

// Receive implements [engine.Conversation]: the worker's answer, or its exit.
func (c *conversation) Receive(ctx context.Context) (engine.Event, error) {
	switch {
	case c.closed:
		return engine.Event{}, errClosed
	case c.job == nil || c.job.state.Load() == jobLinked:
		return engine.Event{}, fmt.Errorf("conversation %s: receive before send", c.id)
	}
	w, j := c.worker, c.job
	select {
	case res := <-j.reply:
		return c.answered(res, j.attempt), nil
	case <-w.ctx.Done():
		// An answer sent before the exit still counts (see Worker.exitMu).
		select {
		case res := <-j.reply:
			return c.answered(res, j.attempt), nil
		default:
		}
		j.observed = true
		w.health.Exited(w.clock.Now())
		c.end()
		return engine.Event{Kind: engine.EventWorkerExited, WorkerID: w.id, Attempt: j.attempt, Message: w.exitMsg}, nil
	case <-ctx.Done():
		return engine.Event{}, ctx.Err()
	}
}

// answered ends the attempt whose answer arrived (its executor freed the
// slot before sending it), recording it in the worker's figures before
// anyone sees the answer.
func (c *conversation) answered(res engine.ActivityResult, attempt int) engine.Event {
	w, j := c.worker, c.job
	j.observed = true
	now := w.clock.Now()
	w.health.Answered(now, j.latency(now), res.Status == engine.StatusFailed)
	// The executor sent its one answer and is done with the channel,
	// which is empty again: the next send may use it.
	c.replies.Put(j.reply)
	j.reply = nil
	c.end()
	return engine.Event{Kind: engine.EventResponse, WorkerID: c.worker.id, Attempt: attempt, Result: res}
}

// Close implements [engine.Conversation]: it cancels the handler's context if
// the activity is still running and frees the slot. A second Close is an
// error.
func (c *conversation) Close() error {
	if c.closed {
		return errClosed
	}
	c.closed = true
	c.end()
	c.unlink()
	return nil
}

// end ends the current attempt, if any: it cancels the handler's context
// and frees the slot, unless the activity still waits in the mailbox of a
// running worker; then the executor that takes it out frees it (or, if the
// worker exits first, its last executor), so that the mailbox never holds
// more activities than the worker has slots.
func (c *conversation) end() {
	j := c.job
	if j == nil {
		return
	}
	c.job = nil
	if j.cancel != nil {
		j.cancel()
	}
	if !j.observed && j.state.Load() != jobLinked {
		// Sent, and neither answered nor seen lost to an exit: dispatch
		// stops waiting for it (a timeout, or the workflow gave up). If
		// the worker exited meanwhile, that is what became of it.
		j.observed = true
		now := c.worker.clock.Now()
		if c.worker.ctx.Err() != nil {
			c.worker.health.Exited(now)
		} else {
			c.worker.health.Abandoned(now, j.latency(now))
		}
	}
	if j.state.CompareAndSwap(jobQueued, jobAbandoned) && c.worker.ctx.Err() == nil {
		return
	}
	c.worker.release(j)
}

// latency is how long j took, at now: what its handler reported, or the
// time since it was sent.
func (j *job) latency(now time.Time) time.Duration {
	if d := j.took.Load(); d > 0 {
		return time.Duration(d)
	}
	return now.Sub(j.sent)
}

// jobKey is the context key of a handler's job, in a pool
// [WithReportedLatency].
type jobKey struct{}

// ReportLatency says that the activity of ctx, a handler's context, took d,
// so that d counts in the worker's figures instead of the time the pool
// measured. It reports whether it could: only in a pool made
// [WithReportedLatency], and only for d > 0.
func ReportLatency(ctx context.Context, d time.Duration) bool {
	j, ok := ctx.Value(jobKey{}).(*job)
	if !ok || d <= 0 {
		return false
	}
	j.took.Store(int64(d))
	return true
}
