// Package worker makes a Go program a dispatch worker: it connects to
// dispatch over NATS, registers on its channels, runs each activity it
// is sent with a [Handler], and leaves cleanly.
//
// The simplest use is one call, which returns once the worker has drained
// after ctx ends:
//
//	err := worker.Run(ctx, nc, worker.Options{
//		ID:          "email-1",
//		Channels:    []string{"prod/email"},
//		MaxInFlight: 4,
//	}, func(ctx context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
//		return engine.Completed(req.Input), nil
//	})
//
// What it does, in the protocol's terms (docs/protocol.md):
//
//   - registers (id, channels, max_in_flight, tags, its NATS connection),
//     and again after every reconnect and whenever a dispatch node says
//     hello;
//   - acks every request at once: accepted when an executor is free,
//     deferred when it holds a slot but every executor is busy
//     (Options.Concurrency below MaxInFlight), rejected when all
//     MaxInFlight slots are taken or it is draining. A full worker
//     rejects, so capacity stays exact with several dispatch nodes;
//   - answers each accepted request with the handler's result; a
//     handler's error is a Failed result with the error's text; an
//     output larger than a message can carry ([Worker.MaxOutput]) is a
//     Failed result that says so;
//   - ignores (logs and counts in [Worker.Stats]) a request or cancel
//     for another instance of its id: a node refused its registration
//     as a duplicate of a live worker;
//   - publishes its status (in flight, buffer depth) whenever it changes,
//     and every Options.Heartbeat if set;
//   - cancels a handler's context when dispatch no longer waits for its
//     activity (a timeout, a cancellation), and when the request's
//     start-to-close passes; such an activity is not answered (dispatch
//     records the timeout itself), only its freed slot is reported;
//   - drains when ctx ends or [Worker.Drain] is called: it stops taking
//     work (rejects), deregisters, lets its handlers finish, and returns;
//     if its connection closes meanwhile, it cancels them at once.
//
// The worker's exit, as dispatch sees it, is its connection closing: a
// crashed worker needs no goodbye.
package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
)

// Handler runs one activity and returns its result. An error is the
// activity's failure: the worker answers Failed with the error's text. A
// zero result with a nil error is Completed with no output. ctx ends when
// dispatch no longer waits for the activity, when the request's
// start-to-close passes, or when a drain runs out of time; the handler
// should then return.
type Handler func(ctx context.Context, req engine.ActivityRequest) (engine.ActivityResult, error)

// Options configures a worker.
type Options struct {
	// ID is the worker's identity, which routers choose and journals
	// record; required, a NATS subject token (no '.', '*', '>' or space).
	ID string
	// Channels are the channels it serves, as "namespace/task_queue";
	// at least one.
	Channels []string
	// MaxInFlight is how many activities it holds at once (running or
	// deferred); 0 means 1. A request beyond it is rejected.
	MaxInFlight int
	// Concurrency is how many handlers run at once; 0 (or more than
	// MaxInFlight) means MaxInFlight. Requests accepted beyond it are
	// deferred: acked "deferred", started in order as handlers return.
	Concurrency int
	// Tags are the affinity tags routers see.
	Tags []string
	// Labels are the key-value labels routers see (region: eu), as
	// engine.CheckLabels allows them: at most 32, keys of at most 63
	// bytes, values of at most 255, none with surrounding spaces.
	Labels map[string]string
	// Heartbeat, if set, is how often the worker publishes its status
	// even when nothing changed, for dispatch nodes that cannot read
	// disconnect advisories (they deem a silent worker gone).
	Heartbeat time.Duration
	// DrainTimeout bounds how long a drain waits for running handlers
	// before it cancels their contexts (and then waits for them to
	// return); 0 means no bound.
	DrainTimeout time.Duration
	// Logger receives the worker's log; nil discards it.
	Logger *slog.Logger
}

func (o *Options) check() error {
	if err := protocol.CheckToken(o.ID); err != nil {
		return fmt.Errorf("worker id: %w", err)
	}
	if len(o.Channels) == 0 {
		return fmt.Errorf("worker %s: no channels", o.ID)
	}
	for _, c := range o.Channels {
		if _, err := protocol.ParseChannel(c); err != nil {
			return fmt.Errorf("worker %s: %w", o.ID, err)
		}
	}
	switch {
	case o.MaxInFlight < 0:
		return fmt.Errorf("worker %s: max in flight %d is negative", o.ID, o.MaxInFlight)
	case o.Concurrency < 0:
		return fmt.Errorf("worker %s: concurrency %d is negative", o.ID, o.Concurrency)
	case o.Heartbeat < 0:
		return fmt.Errorf("worker %s: heartbeat %s is negative", o.ID, o.Heartbeat)
	}
	if err := engine.CheckLabels(o.Labels); err != nil {
		return fmt.Errorf("worker %s: %w", o.ID, err)
	}
	return nil
}

// Run runs a worker on nc until ctx ends, then drains it (see the package
// documentation) and returns nil; it returns an error if the worker cannot
// start or its connection closes. It does not close nc.
func Run(ctx context.Context, nc *nats.Conn, opts Options, h Handler) error {
	w, err := New(nc, opts, h)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// Worker is one worker. Create it with [New], run it with [Worker.Run].
type Worker struct {
	nc       *nats.Conn
	opts     Options
	h        Handler
	log      *slog.Logger
	instance string
	max      int
	conc     int

	drain    chan struct{} // closed by Drain
	drainOne sync.Once
	changed  chan struct{} // poked when the state changes
	wg       sync.WaitGroup

	stats struct{ otherInstance, tooLarge atomic.Int64 }

	mu        sync.Mutex
	seq       uint64
	inFlight  int
	running   int
	deferred  []*job
	jobs      map[jobKey]*job
	draining  bool
	handlerCx context.Context // parent of handler contexts; cancelled when a drain runs out of time
	stopAll   context.CancelFunc
}

type jobKey struct {
	conv    string
	attempt int
}

// job is one accepted request.
type job struct {
	key    jobKey
	reply  string
	req    engine.ActivityRequest
	ctx    context.Context
	cancel context.CancelFunc
	// dropped: dispatch no longer waits for its answer (it cancelled
	// the activity); guarded by Worker.mu.
	dropped bool
}

// New checks opts and returns a worker that [Worker.Run] starts.
func New(nc *nats.Conn, opts Options, h Handler) (*Worker, error) {
	if nc == nil {
		return nil, errors.New("worker: nil connection")
	}
	if h == nil {
		return nil, fmt.Errorf("worker %s: nil handler", opts.ID)
	}
	opts.Channels = slices.Clone(opts.Channels)
	opts.Tags = slices.Clone(opts.Tags)
	opts.Labels = maps.Clone(opts.Labels)
	if err := opts.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("worker %s: instance id: %w", opts.ID, err)
	}
	w := &Worker{nc: nc, opts: opts, h: h, log: opts.Logger, instance: hex.EncodeToString(b),
		max: max(opts.MaxInFlight, 1), drain: make(chan struct{}), changed: make(chan struct{}, 1), jobs: map[jobKey]*job{}}
	w.conc = w.max
	if opts.Concurrency > 0 && opts.Concurrency < w.max {
		w.conc = opts.Concurrency
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.log = w.log.With("worker", opts.ID)
	w.handlerCx, w.stopAll = context.WithCancel(context.Background())
	return w, nil
}

// Drain makes Run stop taking work, deregister, wait for its handlers and
// return. It does not wait; it is safe to call more than once.
func (w *Worker) Drain() { w.drainOne.Do(func() { close(w.drain) }) }

// Stats is what a worker has counted so far.
type Stats struct {
	// OtherInstance counts the requests and cancels it ignored because
	// they were for another instance of its id: a node refused this
	// process's registration as a duplicate of a live worker.
	OtherInstance int64
	// TooLarge counts the outputs too large for a message, answered as
	// failures (see [Worker.MaxOutput]).
	TooLarge int64
}

// Stats returns what the worker has counted so far.
func (w *Worker) Stats() Stats {
	return Stats{OtherInstance: w.stats.otherInstance.Load(), TooLarge: w.stats.tooLarge.Load()}
}

// Instance returns the worker's instance: random per process, it tells
// this process from another that takes the same id.
func (w *Worker) Instance() string { return w.instance }

// messageLimit is the largest message, headers included, the worker can
// send: its connection's max payload, at most protocol.MaxBodySize.
func (w *Worker) messageLimit() int {
	limit := protocol.MaxBodySize
	if mp := w.nc.MaxPayload(); mp > 0 && mp < int64(limit) {
		limit = int(mp)
	}
	return limit
}

// MaxOutput returns the largest output a handler can return: its size on
// the wire, that is its data as is for a JSON content type, as a JSON
// string (escapes count) for other text, base64 (4/3 larger) for binary
// data. It is the message limit (the connection's max payload, at most
// protocol.MaxBodySize) less the response's envelope, counted for the
// longest ids and a content type of up to 256 bytes. A larger output is
// answered as a failure ("output of N bytes exceeds the message limit
// M").
func (w *Worker) MaxOutput() int {
	long := strings.Repeat("x", protocol.MaxIDLength)
	huge := &protocol.State{Seq: math.MaxUint64, InFlight: math.MaxInt, BufferDepth: math.MaxInt}
	env := &protocol.Response{Version: protocol.Version, WorkerID: w.opts.ID, ConversationID: long, Attempt: math.MaxInt,
		Result: &protocol.Result{Status: "completed", Output: &protocol.Payload{ContentType: long, DataBase64: "eA=="}}, State: huge}
	body, ct, err := protocol.Encode(env)
	if err != nil {
		return 0 // not reached: the envelope is valid
	}
	// The NATS header block: "NATS/1.0\r\n", "Content-Type: CT\r\n", "\r\n".
	header := len("NATS/1.0\r\n") + len(protocol.HeaderContentType) + len(": ") + len(ct) + len("\r\n\r\n")
	// The body less the 4 bytes of data in it: "data_base64":"" is the
	// longest form of an empty output ("data":"" is shorter).
	return max(w.messageLimit()-header-(len(body)-4), 0)
}

// State returns the worker's load as it reports it.
func (w *Worker) State() protocol.State {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state()
}

func (w *Worker) state() protocol.State {
	return protocol.State{Seq: w.seq, InFlight: w.inFlight, BufferDepth: len(w.deferred)}
}

// Run registers the worker and serves until ctx ends or Drain is called,
// then drains and returns nil. A worker runs once.
func (w *Worker) Run(ctx context.Context) error {
	defer w.stopAll()
	status := w.nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer w.nc.RemoveStatusListener(status)
	var subs []*nats.Subscription
	unsubscribe := func() {
		for _, s := range subs {
			_ = s.Unsubscribe() // fails only on a closed connection
		}
		subs = nil
	}
	defer unsubscribe()
	for _, s := range []struct {
		subject string
		h       nats.MsgHandler
	}{
		{protocol.RequestSubject(w.opts.ID), w.onRequest},
		{protocol.CancelSubject(w.opts.ID), w.onCancel},
		{protocol.SubjectHello, w.onHello},
		{protocol.WorkerHelloSubject(w.opts.ID), w.onHello},
	} {
		sub, err := w.nc.Subscribe(s.subject, s.h)
		if err != nil {
			return fmt.Errorf("worker %s: subscribe to %s: %w", w.opts.ID, s.subject, err)
		}
		subs = append(subs, sub)
	}
	if err := w.register(); err != nil {
		return err
	}
	if err := protocol.Flush(ctx, w.nc); err != nil && ctx.Err() == nil {
		if w.nc.IsClosed() {
			return fmt.Errorf("worker %s: %w", w.opts.ID, err)
		}
		// The connection dropped under the flush (nats.go reports that as
		// closed, though it reconnects) or the server was slow to answer:
		// the registration goes again on the CONNECTED below, or when a
		// node's hello asks for it.
		w.log.Warn("the registration was not confirmed; registering again once connected", "error", err)
	} else {
		w.log.Info("worker registered", "channels", w.opts.Channels, "max_in_flight", w.max)
	}

	var heartbeat <-chan time.Time
	if w.opts.Heartbeat > 0 {
		t := time.NewTicker(w.opts.Heartbeat)
		defer t.Stop()
		heartbeat = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return w.drainNow(&subs, status, heartbeat)
		case <-w.drain:
			return w.drainNow(&subs, status, heartbeat)
		case st := <-status:
			switch st {
			case nats.CONNECTED: // reconnected: a new connection, a new link
				if err := w.register(); err != nil {
					w.log.Warn("could not register again after a reconnect", "error", err)
				}
			case nats.CLOSED:
				w.stopAll()
				w.wg.Wait()
				return fmt.Errorf("worker %s: connection closed", w.opts.ID)
			}
		case <-w.changed:
			w.publishStatus()
		case <-heartbeat:
			w.publishStatus()
		}
	}
}

// drainNow stops taking work, deregisters, waits for the handlers (at
// most DrainTimeout, then cancels them and waits for them to return), and
// unsubscribes. A connection that closes meanwhile ends the wait at once:
// no answer can leave any more, so the handlers are cancelled. It keeps
// publishing its status, on changes and every heartbeat, until the
// handlers have returned: a node that reads no disconnect advisories
// would otherwise deem a worker draining a long activity gone, and run
// the activity again elsewhere.
func (w *Worker) drainNow(subs *[]*nats.Subscription, status <-chan nats.Status, heartbeat <-chan time.Time) error {
	w.mu.Lock()
	w.draining = true
	w.mu.Unlock()
	w.log.Info("worker draining")
	err := w.publish(protocol.SubjectDeregister, &protocol.Deregistration{Version: protocol.Version, WorkerID: w.opts.ID,
		Instance: w.instance, Reason: "draining"})
	if err != nil {
		w.log.Warn("could not deregister", "error", err)
	}
	idle := make(chan struct{})
	go func() { // ends when the handlers have returned
		w.wg.Wait()
		close(idle)
	}()
	var timeout <-chan time.Time
	if d := w.opts.DrainTimeout; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	for waiting := true; waiting; {
		select {
		case <-idle:
			waiting = false
		case <-w.changed:
			w.publishStatus()
		case <-heartbeat:
			w.publishStatus()
		case <-timeout:
			w.log.Warn("drain timed out: cancelling the handlers", "after", w.opts.DrainTimeout)
			w.stopAll()
			timeout = nil
		case st := <-status:
			if st == nats.CLOSED {
				w.log.Warn("connection closed while draining: cancelling the handlers")
				w.stopAll()
				status = nil
			}
		}
	}
	for _, s := range *subs {
		_ = s.Unsubscribe()
	}
	*subs = nil
	if !w.nc.IsClosed() {
		if w.nc.IsConnected() { // a flush while reconnecting would wait out its whole timeout
			_ = w.nc.FlushTimeout(2 * time.Second) // the last responses and the deregistration leave before Run returns
		} else {
			w.log.Warn("drained while disconnected from NATS: the deregistration may not have left")
		}
	}
	w.log.Info("worker drained")
	return nil
}

// register publishes the worker's registration, naming its current
// connection.
func (w *Worker) register() error {
	cid, err := w.nc.GetClientID()
	if err != nil {
		return fmt.Errorf("worker %s: client id: %w", w.opts.ID, err)
	}
	w.mu.Lock()
	st := w.state()
	w.mu.Unlock()
	r := &protocol.Registration{Version: protocol.Version, WorkerID: w.opts.ID, Instance: w.instance, Channels: w.opts.Channels,
		MaxInFlight: w.max, Tags: w.opts.Tags, Labels: w.opts.Labels, Connection: &protocol.Connection{ServerID: w.nc.ConnectedServerId(), ClientID: cid},
		State: &st}
	if w.opts.Heartbeat > 0 {
		r.Heartbeat = w.opts.Heartbeat.String()
	}
	return w.publish(protocol.SubjectRegister, r)
}

func (w *Worker) publish(subject string, m protocol.Message) error {
	msg, err := protocol.NewMsg(subject, m)
	if err != nil {
		return err
	}
	if err := w.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("worker %s: publish to %s: %w", w.opts.ID, subject, err)
	}
	return nil
}

func (w *Worker) publishStatus() {
	w.mu.Lock()
	st := w.state()
	w.mu.Unlock()
	if err := w.publish(protocol.SubjectStatus, &protocol.Status{Version: protocol.Version, WorkerID: w.opts.ID,
		Instance: w.instance, State: &st}); err != nil {
		w.log.Warn("could not publish the status", "error", err)
	}
}

// changedLocked counts a change of state and pokes the status publisher.
// w.mu is held.
func (w *Worker) changedLocked() {
	w.seq++
	select {
	case w.changed <- struct{}{}:
	default: // a publish is due already; it sends the newest state
	}
}

func (w *Worker) onHello(msg *nats.Msg) {
	var h protocol.Hello
	if err := protocol.DecodeMsg(msg, &h); err != nil {
		w.log.Warn("refused a message", "subject", msg.Subject, "error", err)
		return
	}
	w.mu.Lock()
	draining := w.draining
	w.mu.Unlock()
	if draining {
		return
	}
	if err := w.register(); err != nil {
		w.log.Warn("could not register again", "node", h.NodeID, "error", err)
	}
}

// onRequest acks a request at once: accepted and started, deferred, or
// rejected.
func (w *Worker) onRequest(msg *nats.Msg) {
	var r protocol.Request
	if err := protocol.DecodeMsg(msg, &r); err != nil {
		w.log.Warn("refused a request", "subject", msg.Subject, "error", err)
		return
	}
	if r.Instance != w.instance {
		w.ignoreOther("request", r.ConversationID, r.Instance)
		return
	}
	if msg.Reply == "" {
		w.log.Warn("refused a request without a reply subject", "conversation", r.ConversationID)
		return
	}
	req, _ := r.Activity.Engine() // checked when decoded
	key := jobKey{conv: r.ConversationID, attempt: r.Attempt}
	w.mu.Lock()
	var status protocol.AckStatus
	var reason string
	var start *job
	switch {
	case w.draining:
		status, reason = protocol.AckRejected, "draining"
	case w.jobs[key] != nil:
		status, reason = protocol.AckRejected, "already has this attempt"
	case w.inFlight >= w.max:
		status, reason = protocol.AckRejected, fmt.Sprintf("full: %d of %d slots in flight", w.inFlight, w.max)
	default:
		j := &job{key: key, reply: msg.Reply, req: req}
		j.ctx, j.cancel = context.WithCancel(w.handlerCx)
		if req.StartToClose > 0 {
			j.ctx, j.cancel = withTimeout(j.ctx, j.cancel, req.StartToClose)
		}
		w.jobs[key] = j
		w.inFlight++
		if w.running < w.conc {
			w.running++
			status, start = protocol.AckAccepted, j
		} else {
			status = protocol.AckDeferred
			w.deferred = append(w.deferred, j)
		}
		w.wg.Add(1)
		w.changedLocked()
	}
	st := w.state()
	w.mu.Unlock()
	ack := &protocol.Ack{Version: protocol.Version, WorkerID: w.opts.ID, ConversationID: r.ConversationID, Attempt: r.Attempt,
		Status: status, Reason: reason, State: &st}
	if err := w.publish(msg.Reply, ack); err != nil {
		w.log.Warn("could not ack", "conversation", r.ConversationID, "error", err)
	}
	if start != nil {
		go w.run(start) // owned by w.wg, which Run waits for
	}
}

// withTimeout bounds ctx by d; the returned cancel cancels both.
func withTimeout(ctx context.Context, cancel context.CancelFunc, d time.Duration) (context.Context, context.CancelFunc) {
	tctx, tcancel := context.WithTimeout(ctx, d)
	return tctx, func() { tcancel(); cancel() }
}

// run runs job j, answers it, and runs the deferred jobs after it while
// there are any.
func (w *Worker) run(j *job) {
	for j != nil {
		res := w.call(j)
		w.mu.Lock()
		// Dispatch times an activity out itself: one whose start-to-close
		// passed here, or that dispatch cancelled, is not answered, so
		// that a handler's answer to its cancellation does not overtake
		// the timeout dispatch records.
		moot := j.dropped || errors.Is(j.ctx.Err(), context.DeadlineExceeded)
		j.cancel()
		delete(w.jobs, j.key)
		w.inFlight--
		w.running--
		var next *job
		for len(w.deferred) > 0 && next == nil {
			next, w.deferred = w.deferred[0], w.deferred[1:]
			if next.ctx.Err() != nil { // cancelled while deferred: dropped, unanswered
				next.cancel()
				delete(w.jobs, next.key)
				w.inFlight--
				w.wg.Done()
				next = nil
			}
		}
		if next != nil {
			w.running++
		}
		w.changedLocked()
		st := w.state()
		w.mu.Unlock()
		if moot {
			w.wg.Done()
			j = next
			continue
		}
		resp := &protocol.Response{Version: protocol.Version, WorkerID: w.opts.ID, ConversationID: j.key.conv,
			Attempt: j.key.attempt, Result: protocol.ResultOf(res), State: &st}
		err := w.publish(j.reply, resp)
		if errors.Is(err, protocol.ErrTooLarge) || errors.Is(err, nats.ErrMaxPayload) {
			// Answered all the same, as a failure that fits: otherwise the
			// activity would wait for ever, holding its slot at dispatch.
			w.stats.tooLarge.Add(1)
			msg := fmt.Sprintf("worker %s: output of %d bytes exceeds the message limit %d", w.opts.ID, len(res.Output.Data), w.messageLimit())
			w.log.Warn("output too large: answered failed", "conversation", j.key.conv, "error", err)
			resp.Result = protocol.ResultOf(engine.Failed(msg))
			err = w.publish(j.reply, resp)
		}
		if err != nil {
			w.log.Warn("could not answer", "conversation", j.key.conv, "error", err)
		}
		w.wg.Done()
		j = next
	}
}

// call runs the handler, containing a panic.
func (w *Worker) call(j *job) (res engine.ActivityResult) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("handler panicked", "conversation", j.key.conv, "panic", r)
			res = engine.Failed(fmt.Sprintf("worker %s: handler panicked: %v", w.opts.ID, r))
		}
	}()
	out, err := w.h(j.ctx, j.req)
	switch {
	case err != nil:
		return engine.Failed(err.Error())
	case out.IsZero():
		return engine.Completed(engine.Payload{})
	case out.Status == engine.StatusFailed:
		return engine.Failed(out.Error)
	}
	return engine.Completed(out.Output)
}

// onCancel cancels the handler's context of an activity dispatch no
// longer waits for; a deferred one is dropped when its turn comes.
func (w *Worker) onCancel(msg *nats.Msg) {
	var c protocol.Cancel
	if err := protocol.DecodeMsg(msg, &c); err != nil {
		w.log.Warn("refused a cancel", "subject", msg.Subject, "error", err)
		return
	}
	if c.Instance != w.instance {
		w.ignoreOther("cancel", c.ConversationID, c.Instance)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if j := w.jobs[jobKey{conv: c.ConversationID, attempt: c.Attempt}]; j != nil {
		j.dropped = true
		j.cancel()
	}
}

// ignoreOther logs and counts a request or cancel for another instance
// of this worker's id: a dispatch node refused this process's
// registration as a duplicate of a live worker, and sends that worker's
// messages, which this process hears too, to it.
func (w *Worker) ignoreOther(kind, conv, instance string) {
	w.stats.otherInstance.Add(1)
	w.log.Warn("ignored a "+kind+" for another instance of this worker id: is another process running with this id?",
		"conversation", conv, "instance", w.instance, "for_instance", instance)
}
