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

// Pool holds the in-process workers of every channel. It implements
// [engine.WorkerPool], [engine.ConversationFactory] and
// [engine.CapacitySignal]. Membership changes
// are copy-on-write: a snapshot already taken is never affected, and nothing
// in flight is paused.
//
// Reads take no lock: the map of channels is replaced, never modified, and
// each channel's workers are a list replaced, never modified, in that
// channel's own entry. So starting or removing a worker copies the list of
// its channel only, and the map is copied only when channels are added or
// removed: once per [Pool.AddChannels] or [Pool.RemoveChannels] call,
// however many channels it names.
type Pool struct {
	mu       sync.Mutex // serialises membership changes
	channels atomic.Pointer[channelMap]
	started  map[*Worker]struct{} // workers to stop on Close, pruned as they finish
	pruneAt  int                  // prune started when it holds this many
	closed   bool
	unknown  chan struct{} // closed: what CapacityChanged returns for a channel the pool does not know
	clock    Clock
	report   bool // handlers may report their latency
	// replies holds reply channels of answered activities, empty and sent
	// on by no one any more, for the conversations' next sends: a
	// dispatch then allocates none (see conversation.answered).
	replies sync.Pool
}

// Clock is where a pool takes the time of what it observes of its workers.
type Clock interface {
	Now() time.Time
}

// Option configures a [Pool].
type Option func(*Pool)

// WithClock makes the pool take the time of its observations from c rather
// than the system clock: when a request is sent, when its answer or the worker's
// exit is received, and when a snapshot reads the figures. A clock that
// does not move, as golden scenarios use, makes every latency 0 (unless
// handlers report theirs: see [WithReportedLatency]), every average one over
// all samples alike, nothing decay and no exit expire.
func WithClock(c Clock) Option { return func(p *Pool) { p.clock = c } }

// WithReportedLatency lets the handlers of the pool's workers say how long
// an activity took with [ReportLatency], which then counts instead of the
// time the pool measured: for simulations and scripted workers whose
// latency is a figure, not a wait. It costs one allocation per activity.
func WithReportedLatency() Option { return func(p *Pool) { p.report = true } }

// channelMap maps each channel to its membership. It is never modified once
// published.
type channelMap map[engine.ChannelName]*membership

// membership holds one channel's workers in pool order, and its capacity
// signal. The list is replaced, never modified, so a snapshot holds on to
// the one it read.
type membership struct {
	workers  atomic.Pointer[[]*Worker]
	capacity broadcast.Signal
}

func (m *membership) list() []*Worker {
	if ws := m.workers.Load(); ws != nil {
		return *ws
	}
	return nil
}

// minPrune is the size of the started set below which Start does not prune
// it.
const minPrune = 64

// NewPool returns an empty pool.
func NewPool(opts ...Option) *Pool {
	p := &Pool{started: make(map[*Worker]struct{}), pruneAt: minPrune, unknown: make(chan struct{}), clock: health.NewClock()}
	for _, o := range opts {
		o(p)
	}
	close(p.unknown)
	p.channels.Store(&channelMap{})
	return p
}

// AddChannel makes channel known to the pool with no workers, so that its
// snapshot is empty (NoWorkersAvailable) rather than an unknown channel.
// Each call that adds a channel copies the pool's map of channels: add many
// channels with one [Pool.AddChannels].
func (p *Pool) AddChannel(channel engine.ChannelName) { p.AddChannels(channel) }

// AddChannels makes each of channels known to the pool with no workers, as
// AddChannel does, copying the map of channels at most once. Channels
// already known keep their workers.
func (p *Pool) AddChannels(channels ...engine.ChannelName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := *p.channels.Load()
	added := make(channelMap)
	slab := make([]membership, len(channels)) // one object for the collector to mark, not one per channel
	for i, ch := range channels {
		if _, ok := cur[ch]; !ok {
			added[ch] = &slab[i]
		}
	}
	p.publish(added, nil)
}

// Start starts a worker and adds it to channel, after the workers already
// there (a channel the pool does not know yet is added). An id that belongs
// to a worker that exited is replaced in place, so a restarted worker keeps
// its position; an id of a running worker is an error. Either way the
// channel's capacity grows: see [Pool.CapacityChanged].
func (p *Pool) Start(channel engine.ChannelName, cfg WorkerConfig) (*Worker, error) {
	if channel.IsZero() {
		return nil, fmt.Errorf("start worker %s: %w: empty channel", cfg.ID, engine.ErrInvalidChannel)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("start worker %s on %s: pool is closed", cfg.ID, channel.Short())
	}
	m := (*p.channels.Load())[channel]
	var ws []*Worker
	if m != nil {
		ws = m.list()
	}
	at := -1
	tracker := new(health.Tracker)
	for i, w := range ws {
		if w.id != cfg.ID {
			continue
		}
		if w.ctx.Err() == nil {
			return nil, fmt.Errorf("start worker %s on %s: a running worker has that id", cfg.ID, channel.Short())
		}
		at, tracker = i, w.health // a restart keeps what was observed of the id
	}
	added := m == nil
	if added {
		m = &membership{}
	}
	w := startWorker(cfg, &m.capacity, workerEnv{health: tracker, clock: p.clock, report: p.report})
	updated := append(make([]*Worker, 0, len(ws)+1), ws...)
	if at >= 0 {
		updated[at] = w
	} else {
		updated = append(updated, w)
	}
	m.workers.Store(&updated)
	if added {
		p.publish(channelMap{channel: m}, nil)
	}
	p.track(w)
	m.capacity.Notify()
	return w, nil
}

// Remove takes the worker out of channel's membership and returns it. It keeps
// running what it has, and the slots it frees are no longer the channel's
// capacity changes; the pool still stops it on Close. The channel's
// capacity signal fires: an activity that every remaining member has failed
// is told so.
func (p *Pool) Remove(channel engine.ChannelName, id string) (*Worker, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := (*p.channels.Load())[channel]
	if m == nil {
		return nil, false
	}
	ws := m.list()
	for i, w := range ws {
		if w.id == id {
			updated := append(append(make([]*Worker, 0, len(ws)-1), ws[:i]...), ws[i+1:]...)
			m.workers.Store(&updated)
			w.capacity.Store(nil)
			m.capacity.Notify() // fewer members: an activity every one left has failed waits no more
			return w, true
		}
	}
	return nil, false
}

// RemoveChannel drops channel and returns its workers, which keep running
// what they have (see [Worker.Drain]); the pool still stops them on Close.
// Later snapshots of the channel fail with [engine.ErrUnknownChannel], and
// whoever waits for its capacity to change is woken to see that. Each
// call copies the pool's map of channels: remove many channels with one
// [Pool.RemoveChannels].
func (p *Pool) RemoveChannel(channel engine.ChannelName) []*Worker {
	return p.RemoveChannels(channel)
}

// RemoveChannels drops each of channels, as RemoveChannel does, copying the
// map of channels at most once, and returns the workers of all of them,
// channel by channel in the order given.
func (p *Pool) RemoveChannels(channels ...engine.ChannelName) []*Worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*Worker
	for _, m := range p.publish(nil, channels) {
		out = append(out, m.list()...)
		m.capacity.Notify()
	}
	return out
}

// publish replaces the map of channels with a copy that has the channels of
// add and lacks those of remove, unless that copy would be the same, and
// returns the memberships it removed, in the order of remove. p.mu is held.
func (p *Pool) publish(add channelMap, remove []engine.ChannelName) []*membership {
	cur := *p.channels.Load()
	known := func(ch engine.ChannelName) bool { _, ok := cur[ch]; return ok }
	if len(add) == 0 && !slices.ContainsFunc(remove, known) {
		return nil
	}
	next := maps.Clone(cur) // copies the map's storage whole, faster than inserting every entry again
	maps.Copy(next, add)
	var removed []*membership
	for _, ch := range remove {
		if m, ok := next[ch]; ok {
			removed = append(removed, m)
			delete(next, ch)
		}
	}
	p.channels.Store(&next)
	return removed
}

// Workers implements [engine.WorkerPool]: the running workers of channel in
// pool order, each with its current state (its figures as of one reading
// of the clock). Exited workers are left out.
func (p *Pool) Workers(_ context.Context, channel engine.ChannelName, _ engine.ActivityRequest) ([]engine.Worker, error) {
	m, ok := (*p.channels.Load())[channel]
	if !ok {
		return nil, fmt.Errorf("%w %s", engine.ErrUnknownChannel, channel.Short())
	}
	ws := m.list()
	out := make([]engine.Worker, len(ws))
	now := p.clock.Now()
	n := 0
	for _, w := range ws {
		if w.ctx.Err() != nil {
			continue
		}
		// Filled where it lies: a view is too large to build and copy.
		out[n].Participant = w
		w.fill(&out[n].State, now)
		n++
	}
	return out[:n], nil
}

// Members implements [engine.Membership]: the ids of channel's workers,
// those that exited (and may be restarted in place) included, in pool
// order; none for a channel the pool does not know. Remove takes a worker
// out of them.
func (p *Pool) Members(channel engine.ChannelName) []string {
	m, ok := (*p.channels.Load())[channel]
	if !ok {
		return nil
	}
	ws := m.list()
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.id
	}
	return out
}

// CapacityChanged implements [engine.CapacitySignal]: it returns a channel
// that is closed the next time channel's capacity may have grown: a slot of
// one of its workers frees, a worker starts or restarts in it
// ([Pool.Start]), the channel is removed, or [Pool.Poke] is called (as when
// its router is replaced). For a channel the pool does not know it returns
// a closed channel, so that the caller looks again and sees that. Call it
// before taking the snapshot whose capacity it waits for.
func (p *Pool) CapacityChanged(channel engine.ChannelName) <-chan struct{} {
	m, ok := (*p.channels.Load())[channel]
	if !ok {
		return p.unknown
	}
	return m.capacity.Wait()
}

// Poke wakes whoever waits for channel's capacity to change (see
// [Pool.CapacityChanged]), as a host does when something other than the
// workers may let a waiting activity go, such as a new router. A channel
// the pool does not know is ignored.
func (p *Pool) Poke(channel engine.ChannelName) {
	if m, ok := (*p.channels.Load())[channel]; ok {
		m.capacity.Notify()
	}
}

// Open implements [engine.ConversationFactory].
func (p *Pool) Open(_ context.Context, _ string, _ engine.ChannelName, conversationID string) (engine.Conversation, error) {
	return &conversation{id: conversationID, replies: &p.replies}, nil
}

// Close stops every worker the pool started and waits until their handlers
// have returned, or ctx ends. After Close, Start fails.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	ws := make([]*Worker, 0, len(p.started))
	for w := range p.started {
		ws = append(ws, w)
	}
	p.mu.Unlock()
	for _, w := range ws {
		w.Stop("pool closed")
	}
	var errs []error
	for _, w := range ws {
		if err := w.Wait(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// track adds w to the workers to stop on Close, first forgetting those whose
// goroutines have all returned once the set has doubled since it was last
// pruned (so that a pool whose workers come and go keeps a bounded set, at
// a constant cost per Start). p.mu is held.
func (p *Pool) track(w *Worker) {
	if len(p.started) >= p.pruneAt {
		for w := range p.started {
			select {
			case <-w.stopped:
				delete(p.started, w)
			default:
			}
		}
		p.pruneAt = max(2*len(p.started), minPrune)
	}
	p.started[w] = struct{}{}
}
