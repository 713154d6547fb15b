// Package local runs dispatch workers in process: each worker is a set of
// goroutines behind a mailbox, linked to the conversations that use it so
// that its exit reaches them at once.
//
// A [Pool] holds the workers of every channel; it is the [engine.WorkerPool]
// and the [engine.ConversationFactory] of a [engine.Dispatcher] that runs
// activities in process, for tests, benchmarks, simulations and embedding.
package local

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/aion-dispatch/dispatch/engine"
)

// Handler runs one activity. It must return when ctx is done: ctx ends when
// the worker stops or the conversation that sent the activity closes.
type Handler func(ctx context.Context, req engine.ActivityRequest) engine.ActivityResult

// DefaultMailboxSize is the mailbox capacity of a worker whose config sets none.
const DefaultMailboxSize = 1024

// WorkerConfig describes one worker.
type WorkerConfig struct {
	ID string // required, unique within its channel
	// MaxInFlight is how many activities run at once; 0 means 1.
	MaxInFlight int
	// Tags are the affinity tags routers see.
	Tags []string
	// MailboxSize is how many activities may wait; 0 means DefaultMailboxSize.
	MailboxSize int
	// Handler runs each activity; required.
	Handler Handler
}

func (c WorkerConfig) validate() error {
	switch {
	case c.ID == "":
		return errors.New("worker id is empty")
	case c.MaxInFlight < 0:
		return fmt.Errorf("worker %s: max in flight %d is negative", c.ID, c.MaxInFlight)
	case c.MailboxSize < 0:
		return fmt.Errorf("worker %s: mailbox size %d is negative", c.ID, c.MailboxSize)
	case c.Handler == nil:
		return fmt.Errorf("worker %s: no handler", c.ID)
	}
	return nil
}

// Worker is one running in-process worker. MaxInFlight goroutines take
// activities from its mailbox and run the handler. It exits when [Worker.Stop]
// is called or a handler panics; every conversation linked to it then
// observes the exit.
type Worker struct {
	id      string
	max     int
	tags    []string
	handler Handler
	mailbox chan *job

	ctx    context.Context // ends when the worker exits
	cancel context.CancelFunc

	// exitMu orders an exit against answers: an answer sent before the exit
	// is seen by a conversation that observes the exit; none is sent after.
	exitMu  sync.Mutex
	exitMsg string // written once, before ctx ends

	inFlight  atomic.Int64
	running   atomic.Int32  // executors not yet returned
	stopped   chan struct{} // closed when the last executor returns
	links     atomic.Int64  // conversations linked to the worker
	unlinked  chan struct{} // poked when links drops to 0
	drainOnce sync.Once
}

// job is one activity in a worker's mailbox.
type job struct {
	ctx     context.Context // the handler's context
	attempt int
	req     engine.ActivityRequest
	reply   chan engine.ActivityResult // buffered: the executor never blocks
}

// StartWorker starts a worker's goroutines. The caller owns the worker and
// must [Worker.Stop] it; a [Pool] does so for the workers it starts.
func StartWorker(cfg WorkerConfig) (*Worker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := max(cfg.MaxInFlight, 1)
	size := cfg.MailboxSize
	if size == 0 {
		size = DefaultMailboxSize
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Worker{
		id:       cfg.ID,
		max:      n,
		tags:     slices.Clone(cfg.Tags),
		handler:  cfg.Handler,
		mailbox:  make(chan *job, size),
		ctx:      ctx,
		cancel:   cancel,
		stopped:  make(chan struct{}),
		unlinked: make(chan struct{}, 1),
	}
	w.running.Store(int32(n))
	for range n {
		go w.serve()
	}
	return w, nil
}

// ID returns the worker's id.
func (w *Worker) ID() string { return w.id }

// State returns what a router sees of the worker now: activities running,
// capacity, activities waiting in the mailbox, and tags.
func (w *Worker) State() engine.ConsumerStateView {
	return engine.ConsumerStateView{
		ID:          w.id,
		InFlight:    int(w.inFlight.Load()),
		MaxInFlight: w.max,
		BufferDepth: len(w.mailbox),
		Tags:        w.tags,
	}
}

// Stop makes the worker exit with message; conversations linked to it observe
// the exit. It does not wait (see [Worker.Wait]) and is safe to call from the
// worker's own handler and more than once; only the first message counts.
func (w *Worker) Stop(message string) {
	w.exitMu.Lock()
	defer w.exitMu.Unlock()
	if w.ctx.Err() == nil {
		w.exitMsg = message
		w.cancel()
	}
}

// Drain makes the worker exit with message once no conversation is linked
// to it: it finishes every activity it was sent, and one that a
// conversation chose it for but has not sent yet. Use it once the worker is
// out of its pool's membership, so that no new conversation picks it. Drain
// does not wait (see [Worker.Wait]).
func (w *Worker) Drain(message string) {
	w.drainOnce.Do(func() {
		go func() { // ends when the worker exits
			for {
				if w.links.Load() == 0 {
					w.Stop(message)
					return
				}
				select {
				case <-w.unlinked:
				case <-w.ctx.Done():
					return
				}
			}
		}()
	})
}

// link and unlink count the conversations linked to the worker.
func (w *Worker) link() { w.links.Add(1) }

func (w *Worker) unlink() {
	if w.links.Add(-1) == 0 {
		select {
		case w.unlinked <- struct{}{}:
		default: // a poke is already waiting
		}
	}
}

// Done is closed when the worker has exited.
func (w *Worker) Done() <-chan struct{} { return w.ctx.Done() }

// ExitMessage returns why the worker exited, or "" while it runs.
func (w *Worker) ExitMessage() string {
	select {
	case <-w.ctx.Done():
		return w.exitMsg
	default:
		return ""
	}
}

// Wait blocks until the worker has exited and every handler it was running
// has returned, or ctx ends.
func (w *Worker) Wait(ctx context.Context) error {
	select {
	case <-w.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("worker %s: %w", w.id, context.Cause(ctx))
	}
}

// serve is one executor: it runs activities until the worker exits.
func (w *Worker) serve() {
	defer func() {
		if w.running.Add(-1) == 0 {
			close(w.stopped)
		}
	}()
	for {
		select {
		case <-w.ctx.Done():
			return
		case j := <-w.mailbox:
			if !w.run(j) {
				return
			}
		}
	}
}

// run runs one activity and reports whether the worker is still alive.
func (w *Worker) run(j *job) (alive bool) {
	if w.ctx.Err() != nil {
		return false
	}
	if j.ctx.Err() != nil {
		return true // the conversation closed while the activity waited
	}
	w.inFlight.Add(1)
	counted := true
	defer func() {
		if counted {
			w.inFlight.Add(-1)
		}
		if r := recover(); r != nil {
			w.Stop(fmt.Sprintf("panic: %v", r))
			alive = false
		}
	}()
	res := w.handler(j.ctx, j.req)
	// The activity stops counting before its answer leaves, so that whoever
	// reads the answer sees the worker's load without it.
	w.inFlight.Add(-1)
	counted = false
	w.exitMu.Lock()
	defer w.exitMu.Unlock()
	if w.ctx.Err() != nil {
		return false // an exited worker answers nothing; its exit is the answer
	}
	j.reply <- res // buffered: never blocks
	return true
}
