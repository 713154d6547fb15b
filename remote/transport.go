// Package remote is the dispatch side of workers that run as separate
// programs and reach dispatch over NATS: a [Transport] is the
// [engine.WorkerPool], [engine.ConversationFactory], [engine.CapacitySignal]
// and [engine.Membership] of an [engine.Dispatcher], exactly as the
// in-process pool of package local is.
//
// Workers register over NATS (package protocol has the messages; package
// worker is a Go worker). A worker's link is its NATS connection: the
// server's disconnect advisory for it ($SYS.ACCOUNT.*.DISCONNECT, read on
// a connection to the system account, Options.Advisories) is its exit,
// which every conversation linked to it observes one round trip later:
// the transport publishes a marker to its own inbox, and the exit
// happens when the marker comes back, behind every response the worker
// sent (see beginExit). Where advisories are not available, a worker
// that registers with a heartbeat is deemed gone when no message of it
// arrived for a timeout (Options.HeartbeatTimeout), an exit through a
// marker too. Nothing is polled. An exited worker stays
// a member of its channels (see [engine.Membership]) for
// Options.ReconnectGrace: back within it, it keeps its id and place;
// otherwise it leaves them, as a deregistered worker does.
//
// The node says hello when it starts and after every reconnect of
// Options.Conn, so that every worker registers (again) with it.
//
// Capacity: Link takes one of the worker's slots as this node sees them
// (its max_in_flight, less the larger of the slots this node holds and
// the in-flight count the worker last reported). With several dispatch
// nodes that view can be stale, so the worker itself rejects a request
// when it is full: Send then fails with [engine.ErrNotStarted] and the
// activity goes back to its channel's backlog. A worker that rejected is
// seen as full until it reports a newer state.
//
// Bad input is refused where it is received, logged and counted (see
// [Stats]): a wrong content type, malformed JSON, an oversized message,
// an ack or response for a conversation this node does not hold or has
// closed, a duplicate registration of a live worker's id.
//
// The transport does not own its NATS connections. Whoever creates them
// must install [Transport.ErrorHandler] on each (nc.SetErrorHandler):
// messages a slow consumer drops are lost to the transport, and the
// handler is the only place NATS reports them. Whoever creates
// Options.Conn should also disable its reconnect buffer
// (nats.ReconnectBufSize(-1)): while Conn reconnects, Send fails at once
// with [engine.ErrNotStarted] (the activity waits in the backlog, every
// worker seen full until Conn is back) rather than buffer a request, but
// other messages (cancels, hellos, exit markers) would still wait in the
// buffer and leave late. A request whose ack does not come is lost to its
// conversation (an exit); the transport then cancels it on the worker,
// which may still get it.
package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/broadcast"
	"github.com/aion-dispatch/dispatch/internal/health"
	"github.com/aion-dispatch/dispatch/protocol"
)

// DefaultAckTimeout is Options.AckTimeout when it is zero.
const DefaultAckTimeout = 10 * time.Second

// DefaultReconnectGrace is Options.ReconnectGrace when it is zero.
const DefaultReconnectGrace = 30 * time.Second

// DefaultMaxPending is Options.MaxPending when it is zero.
const DefaultMaxPending = 1 << 20

// DefaultHeartbeatMisses is how many heartbeat intervals of a worker may
// pass without a message of it, when Options.HeartbeatTimeout is zero,
// before it is deemed gone.
const DefaultHeartbeatMisses = 3

// Options configures a [Transport].
type Options struct {
	// Conn is the connection to the account the workers are in; required.
	// The transport does not close it.
	Conn *nats.Conn
	// Advisories is a connection to the system account, on which the
	// transport reads the disconnect advisories of worker connections (see
	// broker.Broker.ConnectSystem). Nil: worker exits are seen only through
	// heartbeats and deregistrations.
	Advisories *nats.Conn
	// NodeID names this dispatch node in the subject of its inbox; empty
	// means a random id. It must be a subject token.
	NodeID string
	// Channels are known from the start: a snapshot of one with no worker
	// yet is empty, rather than an unknown channel. A channel a worker
	// registers on becomes known too.
	Channels []engine.ChannelName
	// HeartbeatTimeout is how long a worker that registered with a
	// heartbeat may stay silent before it is deemed gone (an exit);
	// 0 means DefaultHeartbeatMisses times its heartbeat. Workers without a
	// heartbeat have no timeout.
	HeartbeatTimeout time.Duration
	// ReconnectGrace is how long a worker that exited (its connection
	// closed, its heartbeat stopped) stays a member of its channels,
	// waiting to come back: a worker that registers again within it keeps
	// its id and its place; one that does not leaves the membership then,
	// as a deregistered worker does (the capacity signal fires, so an
	// activity every remaining member failed ends). 0 means
	// DefaultReconnectGrace; negative means an exited worker stays a
	// member until it deregisters.
	ReconnectGrace time.Duration
	// AckTimeout bounds the wait for a worker's ack of a request; a
	// request not acked in time is, for its conversation, an exit of the
	// worker. 0 means DefaultAckTimeout.
	AckTimeout time.Duration
	// MaxPending bounds how many messages each subscription of the
	// transport may hold before it has handled them; beyond it the NATS
	// client drops messages and reports a slow consumer (see
	// [Transport.ErrorHandler]). 0 means DefaultMaxPending.
	MaxPending int
	// MaxMessageSize bounds an inbound message; 0 means
	// protocol.MaxBodySize.
	MaxMessageSize int
	// Logger receives what the transport refuses and the workers'
	// comings and goings; nil discards them.
	Logger *slog.Logger
	// Clock is where the transport takes the time of what it observes of
	// its workers (when a request leaves, when its answer or the worker's
	// exit arrives, when a snapshot reads the figures); nil means the
	// system's monotonic clock.
	Clock Clock
}

// Clock is where a transport takes the time of its observations.
type Clock interface {
	Now() time.Time
}

// Transport is the dispatch side of remote workers over NATS. Create one
// with [New] and [Transport.Close] it.
type Transport struct {
	nc, sys    *nats.Conn
	log        *slog.Logger
	node       string
	inbox      string // the prefix of reply subjects
	hbTimeout  time.Duration
	ackTimeout time.Duration
	grace      time.Duration
	maxMsg     int
	stats      counters
	done       chan struct{}    // closed by Close
	reconnects chan nats.Status // Conn's reconnections, for the hello after each, and its close
	wg         sync.WaitGroup   // the goroutine that watches Conn's status
	hooks      atomic.Pointer[testHooks]
	clock      Clock

	mu       sync.Mutex
	workers  map[string]*rworker // by id: the latest incarnation
	byConn   map[protocol.Connection][]*rworker
	channels map[engine.ChannelName]*channel
	pending  map[string]*attempt // by reply token: attempts with a request out
	recent   map[string]bool     // ids of recently closed conversations
	// pastInstances holds the instances of recently forgotten workers: a
	// status of theirs that crossed their exit is not news, nor bad input.
	pastInstances map[string]bool
	pastRing      []string
	ring          []string               // recent, in the order they closed
	refused       map[string]bool        // ids whose registration was refused as a duplicate
	exiting       map[string]pendingExit // by marker token: exits waiting for their marker (see beginExit)
	closed        bool
	subs          []*nats.Subscription
}

// channel is one channel's workers, in the order they registered, and its
// capacity signal.
type channel struct {
	workers []*rworker // live and exited; not those that left
	signal  broadcast.Signal
}

// rworker is one incarnation of a registered worker. Its fields are
// guarded by Transport.mu, except those set at creation.
type rworker struct {
	id, instance string
	done         chan struct{} // closed when it exits

	conn      protocol.Connection
	channels  []engine.ChannelName
	max       int
	tags      []string
	labels    map[string]string // replaced, never changed: views share it
	reserved  int               // slots this node's conversations hold
	reported  protocol.State    // the newest state it reported
	blocked   bool              // it rejected a request; full until it reports a newer state
	gone      bool              // exited
	left      bool              // deregistered
	exitMsg   string
	heartbeat time.Duration
	timer     *time.Timer // heartbeat timeout
	exitTok   string      // the token of its pending exit's marker, if any
	graceEnd  *time.Timer // after an exit: when it leaves its channels; after a deregistration: when it may be forgotten
	graceOver bool        // deregistered, and its grace passed: forgotten once nothing of this node is in flight on it
	// What each channel observed of the worker's id: kept by a later
	// incarnation that registers while this one is remembered.
	health map[engine.ChannelName]*health.Tracker
}

// healthOn returns what channel ch observed of w. t.mu is held.
func (w *rworker) healthOn(ch engine.ChannelName) *health.Tracker {
	h := w.health[ch]
	if h == nil {
		if w.health == nil {
			w.health = make(map[engine.ChannelName]*health.Tracker, 1)
		}
		h = new(health.Tracker)
		w.health[ch] = h
	}
	return h
}

// view is what a router sees of w now. t.mu is held.
func (w *rworker) view() engine.ConsumerStateView {
	in := max(w.reserved, w.reported.InFlight)
	if w.blocked {
		in = max(in, w.max)
	}
	return engine.ConsumerStateView{ID: w.id, InFlight: in, MaxInFlight: w.max, BufferDepth: w.reported.BufferDepth, Tags: w.tags, Labels: w.labels}
}

// errClosed is the error of a transport or conversation used after Close.
var errClosed = errors.New("closed")

// New subscribes to the workers' registrations, to this node's inbox
// and, with Options.Advisories, to the disconnect advisories, then says
// hello so that workers already running register with this node.
func New(ctx context.Context, opts Options) (*Transport, error) {
	if opts.Conn == nil {
		return nil, errors.New("remote: options lack Conn")
	}
	node := opts.NodeID
	if node == "" {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("remote: node id: %w", err)
		}
		node = hex.EncodeToString(b)
	}
	if err := protocol.CheckToken(node); err != nil {
		return nil, fmt.Errorf("remote: node id: %w", err)
	}
	t := &Transport{
		nc: opts.Conn, sys: opts.Advisories, log: opts.Logger, node: node, inbox: protocol.InboxSubject(node),
		hbTimeout: opts.HeartbeatTimeout, ackTimeout: opts.AckTimeout, grace: opts.ReconnectGrace, maxMsg: opts.MaxMessageSize,
		done:    make(chan struct{}),
		workers: map[string]*rworker{}, byConn: map[protocol.Connection][]*rworker{},
		channels: map[engine.ChannelName]*channel{}, pending: map[string]*attempt{},
		recent: map[string]bool{}, refused: map[string]bool{}, exiting: map[string]pendingExit{},
		pastInstances: map[string]bool{}, clock: opts.Clock,
	}
	if t.clock == nil {
		t.clock = health.NewClock()
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.ackTimeout <= 0 {
		t.ackTimeout = DefaultAckTimeout
	}
	if t.grace == 0 {
		t.grace = DefaultReconnectGrace
	}
	if t.maxMsg <= 0 {
		t.maxMsg = protocol.MaxBodySize
	}
	for _, ch := range opts.Channels {
		t.channels[ch] = &channel{}
	}
	pending := opts.MaxPending
	if pending <= 0 {
		pending = DefaultMaxPending
	}
	subscribe := func(nc *nats.Conn, subject string, h nats.MsgHandler) error {
		sub, err := nc.Subscribe(subject, h)
		if err != nil {
			return fmt.Errorf("remote: subscribe to %s: %w", subject, err)
		}
		// Generous limits: a slow consumer is reported to the
		// connection's error handler (see ErrorHandler).
		if err := sub.SetPendingLimits(pending, 256<<20); err != nil {
			return fmt.Errorf("remote: %s: %w", subject, err)
		}
		t.subs = append(t.subs, sub)
		return nil
	}
	err := errors.Join(
		subscribe(t.nc, protocol.SubjectPrefix+".workers.*", t.onWorkerMsg),
		subscribe(t.nc, t.inbox+".>", t.onInbox),
	)
	if err == nil && t.sys != nil {
		err = subscribe(t.sys, protocol.SubjectDisconnect, t.onDisconnect)
		if err == nil {
			err = protocol.Flush(ctx, t.sys)
		}
	}
	if err == nil {
		err = protocol.Flush(ctx, t.nc)
	}
	// Asked before the first hello: a reconnect after it is not missed.
	t.reconnects = t.nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	if err == nil {
		err = t.hello()
	}
	if err != nil {
		t.nc.RemoveStatusListener(t.reconnects)
		t.unsubscribe()
		return nil, err
	}
	t.wg.Go(t.watchConn)
	return t, nil
}

// hello asks every worker to register (again) with this node.
func (t *Transport) hello() error {
	return t.publish(protocol.SubjectHello, &protocol.Hello{Version: protocol.Version, NodeID: t.node})
}

// watchConn says hello again each time Conn reconnects: the
// registrations published while it was away, and those of workers that
// connected to another server meanwhile, were lost to this node. When
// Conn closes, the exits still waiting for their marker happen at once:
// no marker, and no response ahead of it, can come back. It ends when the
// transport closes.
func (t *Transport) watchConn() {
	for {
		select {
		case <-t.done:
			return
		case st, ok := <-t.reconnects:
			if !ok {
				return
			}
			if st == nats.CLOSED {
				t.mu.Lock()
				t.flushExits()
				t.mu.Unlock()
				continue
			}
			if st != nats.CONNECTED {
				continue
			}
			t.mu.Lock()
			for _, c := range t.channels { // requests can leave again (see Workers)
				c.signal.Notify()
			}
			t.mu.Unlock()
			if err := t.hello(); err != nil {
				t.log.Warn("could not say hello after a reconnect", "node", t.node, "error", err)
				continue
			}
			t.stats.hellos.Add(1)
			t.log.Info("reconnected: asked the workers to register again", "node", t.node)
		}
	}
}

// ErrorHandler returns a handler of the asynchronous errors of a NATS
// connection the transport reads (Options.Conn and Options.Advisories):
// it logs each, counts it in [Stats] (SlowConsumers, or AsyncErrors),
// then calls next, if not nil.
//
// The transport does not own its connections, so it cannot install the
// handler itself: the caller must, on each connection, with
// nc.SetErrorHandler(tr.ErrorHandler(nil)) once New returned. A slow
// consumer matters: its subscription dropped messages (registrations,
// statuses, acks, responses, disconnect advisories), which the transport
// then never sees: a lost ack is an exit after Options.AckTimeout, a lost
// response leaves its activity to its start-to-close, a lost registration
// or status is mended by the worker's next one. Without a handler the
// NATS client only prints the error on stderr.
func (t *Transport) ErrorHandler(next nats.ErrHandler) nats.ErrHandler {
	return func(nc *nats.Conn, sub *nats.Subscription, err error) {
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		if errors.Is(err, nats.ErrSlowConsumer) {
			t.stats.slowConsumers.Add(1)
			t.log.Error("slow consumer: messages were dropped", "node", t.node, "subject", subject, "error", err)
		} else {
			t.stats.asyncErrors.Add(1)
			t.log.Warn("nats connection error", "node", t.node, "subject", subject, "error", err)
		}
		if next != nil {
			next(nc, sub, err)
		}
	}
}

// NodeID returns the node's id, as its inbox subject names it.
func (t *Transport) NodeID() string { return t.node }

// Stats returns what the transport has counted so far.
func (t *Transport) Stats() Stats { return t.stats.snapshot() }

// Close unsubscribes, stops the heartbeat timers, and makes every
// conversation still waiting fail. It does not close the connections.
func (t *Transport) Close(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	for _, w := range t.workers {
		if w.timer != nil {
			w.timer.Stop()
		}
		if w.graceEnd != nil {
			w.graceEnd.Stop()
		}
	}
	t.mu.Unlock()
	t.nc.RemoveStatusListener(t.reconnects)
	t.wg.Wait()
	t.unsubscribe()
	// A round trip, so that the server has the unsubscriptions.
	if !t.nc.IsClosed() {
		if err := protocol.Flush(ctx, t.nc); err != nil {
			return fmt.Errorf("remote: close: %w", err)
		}
	}
	return nil
}

func (t *Transport) unsubscribe() {
	for _, s := range t.subs {
		_ = s.Unsubscribe() // fails only on a closed connection, which has none left
	}
}

// AddChannels makes each channel known, with no workers yet.
func (t *Transport) AddChannels(chs ...engine.ChannelName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ch := range chs {
		if t.channels[ch] == nil {
			t.channels[ch] = &channel{}
		}
	}
}

// Workers implements [engine.WorkerPool]: the live registered workers of
// channel, in the order they registered, each with its state as this node
// sees it.
func (t *Transport) Workers(_ context.Context, ch engine.ChannelName, _ engine.ActivityRequest) ([]engine.Worker, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.channels[ch]
	if c == nil {
		return nil, fmt.Errorf("%w %s", engine.ErrUnknownChannel, ch.Short())
	}
	// While Conn is away, no request can leave: every worker is seen
	// full, and watchConn notifies the channels when it is back.
	away := !t.nc.IsConnected()
	out := make([]engine.Worker, 0, len(c.workers))
	now := t.clock.Now()
	for _, w := range c.workers {
		if !w.gone {
			v := w.view()
			if h := w.health[ch]; h != nil {
				h.Fill(&v, now)
			}
			if away {
				v.InFlight = max(v.InFlight, v.MaxInFlight)
			}
			out = append(out, engine.Worker{Participant: w, State: v})
		}
	}
	return out, nil
}

// Members implements [engine.Membership]: the ids of channel's workers,
// those that exited included (a supervisor may restart them), those that
// deregistered not.
func (t *Transport) Members(ch engine.ChannelName) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.channels[ch]
	if c == nil {
		return nil
	}
	out := make([]string, len(c.workers))
	for i, w := range c.workers {
		out[i] = w.id
	}
	return out
}

// closedSignal is what CapacityChanged returns for a channel it does not
// know: the caller looks again at once, and sees that.
var closedSignal = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// CapacityChanged implements [engine.CapacitySignal]: the channel is
// closed when a worker registers on ch (or again, with another capacity),
// a slot this node held frees, a worker reports a lower load, or
// [Transport.Poke] is called.
func (t *Transport) CapacityChanged(ch engine.ChannelName) <-chan struct{} {
	t.mu.Lock()
	c := t.channels[ch]
	t.mu.Unlock()
	if c == nil {
		return closedSignal
	}
	return c.signal.Wait()
}

// Poke wakes whoever waits for ch's capacity to change, as when its
// router is replaced.
func (t *Transport) Poke(ch engine.ChannelName) {
	t.mu.Lock()
	c := t.channels[ch]
	t.mu.Unlock()
	if c != nil {
		c.signal.Notify()
	}
}

// notifyWorker notifies the channels of w. t.mu is held.
func (t *Transport) notifyWorker(w *rworker) {
	for _, ch := range w.channels {
		if c := t.channels[ch]; c != nil {
			c.signal.Notify()
		}
	}
}

// publish sends m on subject.
func (t *Transport) publish(subject string, m protocol.Message) error {
	msg, err := protocol.NewMsg(subject, m)
	if err != nil {
		return err
	}
	if err := t.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("publish to %s: %w", subject, err)
	}
	return nil
}

// refuse logs and counts a message refused where it was received.
func (t *Transport) refuse(msg *nats.Msg, err error) {
	switch {
	case errors.Is(err, protocol.ErrContentType):
		t.stats.wrongContentType.Add(1)
	case errors.Is(err, protocol.ErrTooLarge):
		t.stats.tooLarge.Add(1)
	default:
		t.stats.malformed.Add(1)
	}
	t.log.Warn("refused a message", "subject", msg.Subject, "error", err)
}

// decode decodes msg into m, refusing what is too large first.
func (t *Transport) decode(msg *nats.Msg, m protocol.Message) bool {
	if len(msg.Data) > t.maxMsg {
		t.refuse(msg, fmt.Errorf("%w: %d bytes, at most %d", protocol.ErrTooLarge, len(msg.Data), t.maxMsg))
		return false
	}
	if err := protocol.DecodeMsg(msg, m); err != nil {
		t.refuse(msg, err)
		return false
	}
	return true
}

// onWorkerMsg handles registrations, statuses and deregistrations, in the
// order they arrive (one subscription: one goroutine).
func (t *Transport) onWorkerMsg(msg *nats.Msg) {
	switch msg.Subject {
	case protocol.SubjectRegister:
		var r protocol.Registration
		if t.decode(msg, &r) {
			t.register(r)
		}
	case protocol.SubjectStatus:
		var s protocol.Status
		if t.decode(msg, &s) {
			t.status(s)
		}
	case protocol.SubjectDeregister:
		var d protocol.Deregistration
		if t.decode(msg, &d) {
			t.deregister(d)
		}
	case protocol.SubjectHello:
		// Another node's hello, or ours: for workers.
	default:
		t.refuse(msg, fmt.Errorf("%w: no message is published on this subject", protocol.ErrInvalid))
	}
}

// register adds or updates a worker.
func (t *Transport) register(r protocol.Registration) {
	chs := make([]engine.ChannelName, 0, len(r.Channels))
	for _, s := range r.Channels {
		ch, _ := protocol.ParseChannel(s) // checked when decoded
		if !slices.Contains(chs, ch) {
			chs = append(chs, ch)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	old := t.workers[r.WorkerID]
	if old != nil && old.graceEnd != nil {
		old.graceEnd.Stop() // back within its grace: it keeps its place
	}
	live := old != nil && !old.gone && !old.left
	// A worker that left but still runs what it holds keeps its id until
	// it is done: a new instance that took the id would get its
	// heartbeats refused, and it would be deemed gone mid-activity.
	draining := old != nil && !old.gone && old.left && old.reserved > 0
	if (live || draining) && old.instance != r.Instance {
		t.stats.duplicateRegistrations.Add(1)
		t.refused[r.WorkerID] = true
		t.log.Warn("refused a duplicate registration of a live worker", "worker", r.WorkerID,
			"instance", r.Instance, "live_instance", old.instance, "connection", r.Connection, "live_connection", old.conn)
		return
	}
	w := old
	if live {
		t.stats.reregistrations.Add(1)
		if w.conn != *r.Connection { // reconnected: the old connection's advisory no longer concerns it
			t.unbindConn(w)
		}
	} else {
		t.stats.registrations.Add(1)
		w = &rworker{id: r.WorkerID, instance: r.Instance, done: make(chan struct{})}
		if old != nil {
			// The id's figures: it exited and came back. One map for both
			// incarnations, made now if the old one had none yet, so that
			// what the old one's conversations still observe lands in it.
			if old.health == nil {
				old.health = make(map[engine.ChannelName]*health.Tracker, 1)
			}
			w.health = old.health
		}
		t.workers[r.WorkerID] = w
		t.log.Info("worker registered", "worker", r.WorkerID, "channels", r.Channels, "max_in_flight", r.MaxInFlight,
			"connection", *r.Connection)
	}
	delete(t.refused, r.WorkerID)
	w.conn = *r.Connection
	if !slices.Contains(t.byConn[w.conn], w) {
		t.byConn[w.conn] = append(t.byConn[w.conn], w)
	}
	w.max, w.tags = r.MaxInFlight, slices.Clone(r.Tags)
	if !maps.Equal(w.labels, r.Labels) {
		w.labels = maps.Clone(r.Labels) // a new map: views of the old one may still be read
	}
	t.report(w, *r.State)
	// Channels it left; then those it serves, an earlier incarnation's
	// place kept.
	for _, ch := range w.channels {
		if !slices.Contains(chs, ch) {
			t.removeFrom(ch, w.id)
		}
	}
	w.channels = chs
	for _, ch := range chs {
		c := t.channels[ch]
		if c == nil {
			c = &channel{}
			t.channels[ch] = c
			t.log.Warn("worker registered on a channel this node does not serve: no activity reaches it there until the config has the channel",
				"worker", w.id, "channel", ch)
		}
		if i := slices.IndexFunc(c.workers, func(x *rworker) bool { return x.id == w.id }); i >= 0 {
			c.workers[i] = w
		} else {
			c.workers = append(c.workers, w)
		}
	}
	w.heartbeat = r.HeartbeatInterval()
	t.armHeartbeat(w)
	t.notifyWorker(w)
}

// removeFrom takes worker id out of channel ch's members. t.mu is held.
func (t *Transport) removeFrom(ch engine.ChannelName, id string) {
	if c := t.channels[ch]; c != nil {
		c.workers = slices.DeleteFunc(slices.Clone(c.workers), func(x *rworker) bool { return x.id == id })
	}
}

// unbindConn forgets that w's current connection is its link. t.mu is held.
func (t *Transport) unbindConn(w *rworker) {
	ws := slices.DeleteFunc(slices.Clone(t.byConn[w.conn]), func(x *rworker) bool { return x == w })
	if len(ws) == 0 {
		delete(t.byConn, w.conn)
	} else {
		t.byConn[w.conn] = ws
	}
}

// report takes a state the worker reported, if it is newer than the last
// one, and notifies its channels when its load went down. t.mu is held.
func (t *Transport) report(w *rworker, s protocol.State) {
	if s.Seq < w.reported.Seq {
		return // an older report overtaken by a newer one on another subject
	}
	before := w.view()
	if s.Seq > w.reported.Seq {
		w.blocked = false
	}
	w.reported = s
	if after := w.view(); after.Available() > before.Available() {
		t.notifyWorker(w)
	}
}

// armHeartbeat (re)starts w's heartbeat timeout, if it has one. t.mu is held.
func (t *Transport) armHeartbeat(w *rworker) {
	if e, ok := t.exiting[w.exitTok]; ok && e.heartbeat {
		// Heard before its marker came back: not silent after all.
		delete(t.exiting, w.exitTok)
		w.exitTok = ""
	}
	if w.heartbeat <= 0 || w.gone || t.closed {
		return
	}
	timeout := t.hbTimeout
	if timeout <= 0 {
		timeout = DefaultHeartbeatMisses * w.heartbeat
	}
	if w.timer != nil {
		w.timer.Reset(timeout)
		return
	}
	w.timer = time.AfterFunc(timeout, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.closed || w.gone {
			return
		}
		t.beginExit(w, fmt.Sprintf("worker %s: no heartbeat for %s", w.id, timeout), true)
	})
}

// heard notes a message of worker id (of any instance): its heartbeat
// timeout starts again. t.mu is held.
func (t *Transport) heard(id string) {
	if w := t.workers[id]; w != nil && w.timer != nil && !w.gone {
		t.armHeartbeat(w)
	}
}

// rememberInstance notes a forgotten worker's instance, keeping the last
// recentCloses of them. t.mu is held.
func (t *Transport) rememberInstance(instance string) {
	if len(t.pastRing) >= recentCloses {
		delete(t.pastInstances, t.pastRing[0])
		t.pastRing = t.pastRing[1:]
	}
	t.pastRing = append(t.pastRing, instance)
	t.pastInstances[instance] = true
}

// status takes a worker's state report.
func (t *Transport) status(s protocol.Status) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.workers[s.WorkerID]
	if (w != nil && w.instance == s.Instance && w.gone) || (w == nil && t.pastInstances[s.Instance]) {
		// Sent before its exit, handled after it (statuses and exit
		// markers come on different subscriptions): nothing to do.
		t.log.Debug("a status of a worker gone", "worker", s.WorkerID, "instance", s.Instance)
		return
	}
	if w == nil || w.instance != s.Instance || w.gone {
		t.stats.unknownWorker.Add(1)
		t.log.Warn("refused the status of a worker not registered", "worker", s.WorkerID, "instance", s.Instance)
		return
	}
	t.heard(w.id)
	t.report(w, *s.State)
}

// deregister takes a worker out of its channels: it takes no new work,
// and still answers what it has. Its heartbeat timeout stays armed, and
// its statuses still restart it: a worker that drains a long activity
// and still reports is not deemed gone; one that falls silent is.
func (t *Transport) deregister(d protocol.Deregistration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.workers[d.WorkerID]
	if w == nil || w.instance != d.Instance || w.gone || w.left {
		t.stats.unknownWorker.Add(1)
		t.log.Warn("refused the deregistration of a worker not registered", "worker", d.WorkerID, "instance", d.Instance)
		return
	}
	t.stats.deregistrations.Add(1)
	w.left = true
	for _, ch := range w.channels {
		t.removeFrom(ch, w.id)
	}
	t.notifyWorker(w) // its waiting activities look again, and do not wait for it
	t.log.Info("worker deregistered", "worker", w.id, "reason", d.Reason)
	switch {
	case t.grace > 0:
		w.graceEnd = time.AfterFunc(t.grace, func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			w.graceOver = true
			t.dropLeft(w)
		})
	case t.grace < 0:
		w.graceOver = true
		t.dropLeft(w)
	}
}

// dropLeft forgets w, which deregistered, once nothing of this node is
// in flight on it and it exited or its grace (Options.ReconnectGrace,
// counted from the deregistration) passed: a node does not keep every
// worker process it ever saw. Its statuses are then refused as those of
// a worker not registered. t.mu is held.
func (t *Transport) dropLeft(w *rworker) {
	if !w.left || w.reserved > 0 || !(w.gone || w.graceOver) || t.closed {
		return
	}
	if w.timer != nil {
		w.timer.Stop()
	}
	if w.graceEnd != nil {
		w.graceEnd.Stop()
	}
	if !w.gone {
		t.unbindConn(w)
	}
	if t.workers[w.id] != w {
		return // registered again since
	}
	delete(t.workers, w.id)
	t.rememberInstance(w.instance)
	t.log.Debug("forgot a deregistered worker", "worker", w.id)
	if t.refused[w.id] {
		t.helloRefused(w.id)
	}
}

// onDisconnect handles a disconnect advisory: the workers on that
// connection exited, once their exit markers come back (see beginExit).
func (t *Transport) onDisconnect(msg *nats.Msg) {
	if h := t.hooks.Load(); h != nil && h.disconnected != nil {
		defer h.disconnected()
	}
	d, err := protocol.DecodeDisconnect(msg.Data)
	if err != nil {
		t.refuse(msg, err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range slices.Clone(t.byConn[d.Connection]) {
		t.beginExit(w, fmt.Sprintf("worker %s: connection closed (%s)", w.id, strings.ToLower(d.Reason)), false)
	}
}

// exitMarker is the second-to-last token of an exit marker's subject:
// InboxSubject(node) + ".exit." + a random token. A reply subject has a
// single token after the inbox, so the two never meet.
const exitMarker = "exit"

// testHooks are where tests of this package hold the transport's
// handlers (export_test.go); nil otherwise.
type testHooks struct {
	inbox        func(subject string) // the first thing onInbox does
	disconnected func()               // the last thing onDisconnect does
}

// pendingExit is an exit that waits for its marker to come back.
type pendingExit struct {
	w         *rworker
	conn      protocol.Connection // the connection w was bound to when its exit began
	msg       string
	heartbeat bool // its heartbeat stopped; otherwise its connection closed
}

// beginExit starts the exit of w, which happens when its marker comes
// back through the inbox.
//
// A worker's last response and the news that it is gone reach the node
// on different paths: the response on Conn, in the inbox subscription;
// the disconnect advisory on Advisories; the heartbeat timeout from a
// timer. Acting on the news at once could end the attempt before its
// response, already on its way, is handled: the response would be
// refused and the activity run again. So the node publishes a marker to
// its own inbox on Conn, and the exit happens when the marker comes back
// through the same subscription. NATS keeps the order of one
// subscription's messages, and the server handled the worker's response
// before it saw its connection close (and so before the advisory, and the
// marker sent after it): every response the worker sent is handled
// before its exit. The exit is one round trip late. (That holds where
// the worker and this node share a server; in a cluster the response and
// the advisory may cross different routes.)
//
// The marker's token is random and only an exit this node began is
// taken: a worker cannot forge an exit. If the marker cannot be
// published (Conn closed), the exit happens at once; if Conn closes
// before it comes back, watchConn ends the wait. t.mu is held.
func (t *Transport) beginExit(w *rworker, msg string, heartbeat bool) {
	if w.gone {
		return
	}
	if e, ok := t.exiting[w.exitTok]; ok {
		if !e.heartbeat || heartbeat {
			return // already on its way
		}
		delete(t.exiting, w.exitTok) // a closed connection says more than a silence
	}
	e := pendingExit{w: w, conn: w.conn, msg: msg, heartbeat: heartbeat}
	tok := rand.Text()
	m := nats.NewMsg(t.inbox + "." + exitMarker + "." + tok)
	if err := t.nc.PublishMsg(m); err != nil {
		w.exitTok = ""
		t.log.Warn("could not publish an exit marker: the worker exits at once", "worker", w.id, "error", err)
		t.finishExit(e)
		return
	}
	t.exiting[tok] = e
	w.exitTok = tok
}

// onExitMarker handles the marker of an exit that beginExit began: the
// worker exits, unless it registered again on another connection, or
// (a heartbeat timeout) was heard from, meanwhile.
func (t *Transport) onExitMarker(tok string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.exiting[tok]
	if !ok {
		// Cancelled (the worker was heard from), ended by a close of Conn,
		// or not this node's.
		t.log.Debug("ignored an exit marker this node does not wait for", "token", tok)
		return
	}
	delete(t.exiting, tok)
	e.w.exitTok = ""
	if t.closed || !slices.Contains(t.byConn[e.conn], e.w) {
		return // it registered again on another connection: its old one's close no longer concerns it
	}
	t.finishExit(e)
}

// flushExits makes every exit still waiting for its marker happen now.
// t.mu is held.
func (t *Transport) flushExits() {
	for tok, e := range t.exiting {
		delete(t.exiting, tok)
		e.w.exitTok = ""
		if !t.closed && slices.Contains(t.byConn[e.conn], e.w) {
			t.finishExit(e)
		}
	}
}

// finishExit counts and makes the exit e. t.mu is held.
func (t *Transport) finishExit(e pendingExit) {
	if e.w.gone {
		return
	}
	if e.heartbeat {
		t.stats.heartbeatExits.Add(1)
	} else {
		t.stats.exits.Add(1)
	}
	t.exit(e.w, e.msg)
}

// exit marks w exited: every conversation linked to it observes the exit.
// t.mu is held.
func (t *Transport) exit(w *rworker, msg string) {
	if w.gone {
		return
	}
	w.gone, w.exitMsg = true, msg
	close(w.done)
	if w.timer != nil {
		w.timer.Stop()
	}
	t.unbindConn(w)
	t.log.Info("worker exited", "worker", w.id, "reason", msg)
	if t.grace > 0 && !w.left {
		w.graceEnd = time.AfterFunc(t.grace, func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			t.forget(w)
		})
	}
	if w.left {
		t.dropLeft(w)
	}
	if t.refused[w.id] {
		t.helloRefused(w.id)
	}
}

// helloRefused tells the instance that was refused id, as a duplicate,
// that it may register now. t.mu is held.
func (t *Transport) helloRefused(id string) {
	delete(t.refused, id)
	hello, err := protocol.NewMsg(protocol.WorkerHelloSubject(id), &protocol.Hello{Version: protocol.Version, NodeID: t.node})
	if err == nil {
		err = t.nc.PublishMsg(hello)
	}
	if err != nil {
		t.log.Warn("could not ask a worker to register again", "worker", id, "error", err)
	}
}

// forget takes w, which exited and did not come back within its grace,
// out of its channels' membership, as a deregistration does. Nothing
// happens if the transport closed or w registered again since. t.mu is
// held.
func (t *Transport) forget(w *rworker) {
	if t.closed || t.workers[w.id] != w || !w.gone || w.left {
		return
	}
	t.stats.forgotten.Add(1)
	w.left = true
	delete(t.workers, w.id)
	t.rememberInstance(w.instance)
	for _, ch := range w.channels {
		t.removeFrom(ch, w.id)
	}
	t.notifyWorker(w) // an activity every remaining member failed ends
	t.log.Info("worker left: it did not come back", "worker", w.id, "grace", t.grace)
}
