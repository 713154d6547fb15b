package local

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/aion-dispatch/dispatch/engine"
)

// Pool holds the in-process workers of every channel. It implements
// [engine.WorkerPool] and [engine.ConversationFactory]. Membership changes
// are copy-on-write: a snapshot already taken is never affected, and nothing
// in flight is paused.
type Pool struct {
	mu      sync.Mutex // serialises membership changes
	members atomic.Pointer[membership]
	started map[*Worker]struct{} // workers to stop on Close, pruned as they finish
	closed  bool
}

// membership maps each channel to its workers in pool order. It is never
// modified once published.
type membership map[engine.ChannelName][]*Worker

// NewPool returns an empty pool.
func NewPool() *Pool {
	p := &Pool{started: make(map[*Worker]struct{})}
	p.members.Store(&membership{})
	return p
}

// AddChannel makes channel known to the pool with no workers, so that its
// snapshot is empty (NoWorkersAvailable) rather than an unknown channel.
func (p *Pool) AddChannel(channel engine.ChannelName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := *p.members.Load()
	if _, ok := m[channel]; ok {
		return
	}
	next := maps.Clone(m)
	next[channel] = nil
	p.members.Store(&next)
}

// Start starts a worker and adds it to channel, after the workers already
// there. An id that belongs to a worker that exited is replaced in place, so
// a restarted worker keeps its position; an id of a running worker is an
// error.
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
	m := *p.members.Load()
	ws := m[channel]
	at := -1
	for i, w := range ws {
		if w.id != cfg.ID {
			continue
		}
		if w.ctx.Err() == nil {
			return nil, fmt.Errorf("start worker %s on %s: a running worker has that id", cfg.ID, channel.Short())
		}
		at = i
	}
	w, err := StartWorker(cfg)
	if err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	next := maps.Clone(m)
	updated := append([]*Worker(nil), ws...)
	if at >= 0 {
		updated[at] = w
	} else {
		updated = append(updated, w)
	}
	next[channel] = updated
	p.members.Store(&next)
	p.prune()
	p.started[w] = struct{}{}
	return w, nil
}

// Remove takes the worker out of channel's membership and returns it. It keeps
// running what it has; the pool still stops it on Close.
func (p *Pool) Remove(channel engine.ChannelName, id string) (*Worker, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := *p.members.Load()
	ws := m[channel]
	for i, w := range ws {
		if w.id == id {
			next := maps.Clone(m)
			next[channel] = append(append([]*Worker(nil), ws[:i]...), ws[i+1:]...)
			p.members.Store(&next)
			return w, true
		}
	}
	return nil, false
}

// RemoveChannel drops channel and returns its workers, which keep running
// what they have (see [Worker.Drain]); the pool still stops them on Close.
// Later snapshots of the channel fail with [engine.ErrUnknownChannel].
func (p *Pool) RemoveChannel(channel engine.ChannelName) []*Worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := *p.members.Load()
	ws, ok := m[channel]
	if !ok {
		return nil
	}
	next := maps.Clone(m)
	delete(next, channel)
	p.members.Store(&next)
	return ws
}

// Workers implements [engine.WorkerPool]: the running workers of channel in
// pool order, each with its current state. Exited workers are left out.
func (p *Pool) Workers(_ context.Context, channel engine.ChannelName, _ engine.ActivityRequest) ([]engine.Worker, error) {
	ws, ok := (*p.members.Load())[channel]
	if !ok {
		return nil, fmt.Errorf("%w %s", engine.ErrUnknownChannel, channel.Short())
	}
	out := make([]engine.Worker, 0, len(ws))
	for _, w := range ws {
		if w.ctx.Err() != nil {
			continue
		}
		out = append(out, engine.Worker{ID: w.id, Participant: w, State: w.State()})
	}
	return out, nil
}

// Open implements [engine.ConversationFactory].
func (p *Pool) Open(_ context.Context, _ string, _ engine.ChannelName, conversationID string) (engine.Conversation, error) {
	return &conversation{id: conversationID}, nil
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

// prune forgets workers whose goroutines have all returned. p.mu is held.
func (p *Pool) prune() {
	for w := range p.started {
		select {
		case <-w.stopped:
			delete(p.started, w)
		default:
		}
	}
}
