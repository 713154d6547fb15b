package local

import (
	"context"
	"errors"
	"fmt"

	"github.com/aion-dispatch/dispatch/engine"
)

// errClosed is returned by a conversation used after Close.
var errClosed = errors.New("conversation is closed")

// conversation is one dispatch conversation with in-process workers. The
// link to a worker is its Done channel: Receive selects on it, so an exit is
// observed the moment it happens, without polling.
type conversation struct {
	id     string
	worker *Worker            // the linked worker
	job    *job               // the activity sent to it
	cancel context.CancelFunc // ends job.ctx
	closed bool
}

// Link implements [engine.Conversation]. Linking a worker that already exited
// succeeds; Receive then reports the exit.
func (c *conversation) Link(_ context.Context, w engine.Worker) error {
	if c.closed {
		return errClosed
	}
	lw, ok := w.Participant.(*Worker)
	if !ok || lw == nil {
		return fmt.Errorf("worker %s is not an in-process worker (participant %T)", w.ID, w.Participant)
	}
	c.release()
	c.unlink()
	c.worker = lw
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

// Send implements [engine.Conversation]: it puts the activity in the linked
// worker's mailbox, waiting for room if it is full. A worker that exits
// meanwhile drops it, and Receive reports the exit.
func (c *conversation) Send(ctx context.Context, msg engine.DispatchRequest) error {
	switch {
	case c.closed:
		return errClosed
	case c.worker == nil:
		return fmt.Errorf("conversation %s: send before link", c.id)
	case c.job != nil:
		return fmt.Errorf("conversation %s: worker %s already has its activity", c.id, c.worker.id)
	}
	w := c.worker
	jctx, cancel := context.WithCancel(w.ctx)
	j := &job{ctx: jctx, attempt: msg.Attempt, req: msg.Request, reply: make(chan engine.ActivityResult, 1)}
	select {
	case w.mailbox <- j:
	case <-w.ctx.Done():
	case <-ctx.Done():
		cancel()
		return ctx.Err()
	}
	c.job, c.cancel = j, cancel
	return nil
}

// Receive implements [engine.Conversation]: the worker's answer, or its exit.
func (c *conversation) Receive(ctx context.Context) (engine.Event, error) {
	switch {
	case c.closed:
		return engine.Event{}, errClosed
	case c.job == nil:
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
		c.release()
		return engine.Event{Kind: engine.EventWorkerExited, WorkerID: w.id, Attempt: j.attempt, Message: w.exitMsg}, nil
	case <-ctx.Done():
		return engine.Event{}, ctx.Err()
	}
}

func (c *conversation) answered(res engine.ActivityResult, attempt int) engine.Event {
	c.release()
	return engine.Event{Kind: engine.EventResponse, WorkerID: c.worker.id, Attempt: attempt, Result: res}
}

// Close implements [engine.Conversation]: it cancels the handler's context if
// the activity is still running. A second Close is an error.
func (c *conversation) Close() error {
	if c.closed {
		return errClosed
	}
	c.closed = true
	c.release()
	c.unlink()
	return nil
}

// release ends the current activity's context, if any.
func (c *conversation) release() {
	if c.cancel != nil {
		c.cancel()
	}
	c.job, c.cancel = nil, nil
}
