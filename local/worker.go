// Package local runs dispatch workers in process: each worker is a set of
// goroutines behind a mailbox, linked to the conversations that use it so
// that its exit reaches them at once.
//
// A worker's MaxInFlight is a capacity this package enforces: a
// conversation takes one of the worker's free slots when it links the
// worker, and a link to a worker with none fails with an error wrapping
// [engine.ErrWorkerFull], so that the activity waits in its channel's
// backlog, in the engine, rather than in the worker. The mailbox therefore
// never holds more than MaxInFlight activities and a send never waits for
// room. The [Pool] tells the backlog when a channel's capacity may have
// grown (see [Pool.CapacityChanged]).
//
// A [Pool] holds the workers of every channel; it is the [engine.WorkerPool]
// and the [engine.ConversationFactory] of a [engine.Dispatcher] that runs
// activities in process, for tests, benchmarks, simulations and embedding.
package local

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/broadcast"
	"github.com/aion-dispatch/dispatch/internal/health"
)

// Handler runs one activity. It must return when ctx is done: ctx ends when
// the worker stops or the conversation that sent the activity closes.
type Handler func(ctx context.Context, req engine.ActivityRequest) engine.ActivityResult

// WorkerConfig describes one worker.
type WorkerConfig struct {
	ID string // required, unique within its channel
	// MaxInFlight is the worker's capacity: how many slots it has, and so
	// how many activities it runs or holds at once; 0 means 1.
	MaxInFlight int
	// Tags are the affinity tags routers see.
	Tags []string
	// Labels are the key-value labels routers see, as
	// engine.CheckLabels allows them; the worker keeps a copy.
	Labels map[string]string
	// Handler runs each activity; required.
	Handler Handler
}

func (c WorkerConfig) validate() error {
	switch {
	case c.ID == "":
		return errors.New("worker id is empty")
	case c.MaxInFlight < 0:
		return fmt.Errorf("worker %s: max in flight %d is negative", c.ID, c.MaxInFlight)
	case c.Handler == nil:
		return fmt.Errorf("worker %s: no handler", c.ID)
	}
	if err := engine.CheckLabels(c.Labels); err != nil {
		return fmt.Errorf("worker %s: %w", c.ID, err)
	}
	return nil
}

// Worker is one running in-process worker with MaxInFlight slots. A
// conversation takes a free slot when it links the worker and puts its
// activity into that slot when it sends; MaxInFlight executor goroutines
// take the activities from the worker's mailbox, which has room for
// MaxInFlight, and run the handler.
//
// A slot is taken with a compare-and-swap on the worker's count of slots in
// use, so the count never exceeds MaxInFlight, and it is freed exactly once:
// when the handler has returned (before the answer leaves, so that whoever
// reads the answer sees the slot free), when the worker exits, or when the
// conversation closes or links again. One exception keeps the mailbox within
// its room: an activity still waiting in the mailbox when its conversation
// ends keeps its slot until an executor takes it out (and drops it), which
// is at once unless every executor is still busy.
//
// The worker exits when [Worker.Stop] is called or a handler panics; every
// conversation linked to it then observes the exit.
type Worker struct {
	id      string
	max     int
	tags    []string
	labels  map[string]string // never changed: views share it
	handler Handler
	mailbox chan *job       // room for max: every activity in it holds a slot
	health  *health.Tracker // what its channel observed of it; a restart in place keeps it
	clock   Clock
	report  bool // handlers may report their latency (see ReportLatency)

	ctx    context.Context // ends when the worker exits
	cancel context.CancelFunc

	// exitMu orders an exit against answers: an answer sent before the exit
	// is seen by a conversation that observes the exit; none is sent after.
	exitMu  sync.Mutex
	exitMsg string // written once, before ctx ends

	inFlight  atomic.Int64                     // slots in use, 0..max
	waiting   atomic.Int64                     // of those, the ones whose activity no executor has taken yet
	capacity  atomic.Pointer[broadcast.Signal] // told when a slot frees; nil outside a pool's channel
	running   atomic.Int32                     // executors not yet returned
	stopped   chan struct{}                    // closed when the last executor returns
	links     atomic.Int64                     // conversations linked to the worker
	unlinked  chan struct{}                    // poked when links drops to 0
	drainOnce sync.Once
}

// job is one attempt's use of a worker: the slot its conversation took when
// it linked the worker, and, once sent, the activity in it.
type job struct {
	held  atomic.Bool  // the job holds one of its worker's slots
	slot  bool         // Link took a slot for it (held was true at first)
	state atomic.Int32 // jobLinked, then jobQueued, then jobTaken or jobAbandoned

	// Set by Send before the job enters the mailbox.
	ctx     context.Context // the handler's context
	cancel  context.CancelFunc
	attempt int
	req     engine.ActivityRequest
	reply   chan engine.ActivityResult // buffered: the executor never blocks
	sent    time.Time                  // when Send put it into the mailbox
	took    atomic.Int64               // the latency its handler reported, in nanoseconds; 0: none

	observed bool // its conversation recorded its answer or exit in the worker's figures
}

// The states of a job.
const (
	jobLinked    int32 = iota // its slot is reserved, nothing sent yet
	jobQueued                 // in the mailbox
	jobTaken                  // an executor took it out of the mailbox
	jobAbandoned              // its conversation ended while it was in the mailbox
)

// StartWorker starts a worker's goroutines. The caller owns the worker and
// must [Worker.Stop] it; a [Pool] does so for the workers it starts.
func StartWorker(cfg WorkerConfig) (*Worker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return startWorker(cfg, nil, workerEnv{clock: health.NewClock(), health: new(health.Tracker)}), nil
}

// workerEnv is what a worker takes from its pool: where it keeps its
// figures, and how it observes them.
type workerEnv struct {
	health *health.Tracker
	clock  Clock
	report bool
}

// startWorker starts a worker whose freed slots tell capacity, if not nil.
// cfg is valid.
func startWorker(cfg WorkerConfig, capacity *broadcast.Signal, env workerEnv) *Worker {
	n := max(cfg.MaxInFlight, 1)
	ctx, cancel := context.WithCancel(context.Background())
	w := &Worker{
		id:       cfg.ID,
		max:      n,
		tags:     slices.Clone(cfg.Tags),
		labels:   maps.Clone(cfg.Labels),
		handler:  cfg.Handler,
		mailbox:  make(chan *job, n),
		health:   env.health,
		clock:    env.clock,
		report:   env.report,
		ctx:      ctx,
		cancel:   cancel,
		stopped:  make(chan struct{}),
		unlinked: make(chan struct{}, 1),
	}
	w.capacity.Store(capacity)
	w.running.Store(int32(n))
	for range n {
		go w.serve()
	}
	return w
}

// ID returns the worker's id.
func (w *Worker) ID() string { return w.id }

// State returns what a router sees of the worker now: its capacity
// (MaxInFlight), its tags and labels, its slots in use (InFlight: each taken by a
// link, whether its activity is not sent yet, waits in the mailbox or
// runs) and, of those, the ones whose activity no executor has taken yet
// (BufferDepth: linked but not sent, or waiting in the mailbox; so
// InFlight − BufferDepth activities have started). BufferDepth is 0 but
// for the instant between a link and the executor taking the activity, as
// long as the worker has an idle executor: activities wait for a slot in
// the engine's backlog, not here. The two counts are read one after the
// other, so a change between the reads may show in one only. The observed
// figures are those of the worker's answers and exits as its conversations
// received them (see [engine.ConsumerStateView]).
func (w *Worker) State() engine.ConsumerStateView { return w.view(w.clock.Now()) }

// view is State at now.
func (w *Worker) view(now time.Time) engine.ConsumerStateView {
	var v engine.ConsumerStateView
	w.fill(&v, now)
	return v
}

// fill sets v, a zero view, to State at now.
func (w *Worker) fill(v *engine.ConsumerStateView, now time.Time) {
	v.ID = w.id
	v.InFlight = int(w.inFlight.Load())
	v.MaxInFlight = w.max
	v.BufferDepth = int(w.waiting.Load())
	v.Tags = w.tags
	v.Labels = w.labels
	w.health.Fill(v, now)
}

// reserve takes a free slot and reports whether there was one. The count of
// slots in use never exceeds the capacity, however many conversations race.
func (w *Worker) reserve() bool {
	for {
		n := w.inFlight.Load()
		if n >= int64(w.max) {
			return false
		}
		if w.inFlight.CompareAndSwap(n, n+1) {
			w.waiting.Add(1)
			return true
		}
	}
}

// release frees j's slot, if it still holds one: whoever calls it first
// frees it, later calls do nothing. A slot freed while the worker runs is a
// capacity change its channel's waiters hear of; one freed by an exit is
// not (the worker's capacity left with it).
func (w *Worker) release(j *job) {
	if !j.held.CompareAndSwap(true, false) {
		return
	}
	// A job that no executor took stays so: it is not in the mailbox, or
	// no executor is left, or its conversation abandoned it there first.
	// An executor that took it counted it out itself.
	if j.state.Load() != jobTaken {
		w.waiting.Add(-1)
	}
	w.inFlight.Add(-1)
	if c := w.capacity.Load(); c != nil && c.Waited() && w.ctx.Err() == nil {
		c.Notify()
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

// serve is one executor: it runs activities until the worker exits. The
// last executor to return frees the slots of the activities left in the
// mailbox.
func (w *Worker) serve() {
	defer func() {
		if w.running.Add(-1) == 0 {
			for {
				select {
				case j := <-w.mailbox:
					w.release(j)
				default:
					close(w.stopped)
					return
				}
			}
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

// run runs one activity taken out of the mailbox and reports whether the
// worker is still alive.
func (w *Worker) run(j *job) (alive bool) {
	if !j.state.CompareAndSwap(jobQueued, jobTaken) {
		w.release(j) // abandoned while it waited: its slot was left to us
		return w.ctx.Err() == nil
	}
	if j.slot {
		w.waiting.Add(-1)
	}
	if w.ctx.Err() != nil {
		w.release(j) // the exit frees it; the conversation observes the exit
		return false
	}
	if j.ctx.Err() != nil {
		w.release(j) // the conversation ended as the activity was taken
		return true
	}
	defer func() {
		if r := recover(); r != nil {
			w.Stop(fmt.Sprintf("panic: %v", r))
			w.release(j)
			alive = false
		}
	}()
	res := w.handler(j.ctx, j.req)
	// The slot frees before the answer leaves, so that whoever reads the
	// answer sees the worker's load without it.
	w.release(j)
	w.exitMu.Lock()
	defer w.exitMu.Unlock()
	if w.ctx.Err() != nil {
		return false // an exited worker answers nothing; its exit is the answer
	}
	j.reply <- res // buffered: never blocks
	return true
}
