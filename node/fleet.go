package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
)

// Remote is a transport whose workers are programs of their own that
// register on their channels (remote.Transport, over NATS). A node with
// one serves each channel with its simulated workers and the remote
// workers registered on it, side by side.
type Remote interface {
	engine.WorkerPool
	engine.ConversationFactory
	engine.CapacitySignal
	engine.Membership
	// Poke fires the channel's capacity signal (a router was replaced).
	Poke(channel engine.ChannelName)
	// AddChannels makes channels known before any worker registers on them.
	AddChannels(channels ...engine.ChannelName)
}

// fleet shows the engine one pool: the node's simulated workers and, when
// the node has a [Remote], its workers. A conversation links each attempt
// through the transport of the worker chosen.
type fleet struct {
	local  *local.Pool
	remote Remote          // nil: simulated workers only
	stop   <-chan struct{} // the node's end: merged signals stop watching

	log *slog.Logger

	mu     sync.Mutex
	merged map[engine.ChannelName]chan struct{} // the signal handed out, until it is closed
	shadow map[string]bool                      // "channel worker" of remote workers said to be shadowed
}

func newFleet(pool *local.Pool, remote Remote, stop <-chan struct{}, log *slog.Logger) *fleet {
	return &fleet{local: pool, remote: remote, stop: stop, log: log,
		merged: map[engine.ChannelName]chan struct{}{}, shadow: map[string]bool{}}
}

// Workers implements [engine.WorkerPool]: the simulated workers, then the
// remote ones. The channel must be the node's.
func (f *fleet) Workers(ctx context.Context, ch engine.ChannelName, req engine.ActivityRequest) ([]engine.Worker, error) {
	ws, err := f.local.Workers(ctx, ch, req)
	if err != nil || f.remote == nil {
		return ws, err
	}
	rs, err := f.remote.Workers(ctx, ch, req)
	switch {
	case errors.Is(err, engine.ErrUnknownChannel):
		return ws, nil
	case err != nil:
		return nil, fmt.Errorf("remote workers: %w", err)
	}
	for _, r := range rs {
		// An id is one worker: a remote worker with a simulated one's id
		// on the same channel is not offered (said once).
		if slices.ContainsFunc(ws, func(w engine.Worker) bool { return w.ID() == r.ID() }) {
			f.shadowed(ch, r.ID())
			continue
		}
		ws = append(ws, r)
	}
	return ws, nil
}

// shadowed says, once, that a remote worker has a simulated one's id.
func (f *fleet) shadowed(ch engine.ChannelName, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if key := ch.Short() + " " + id; !f.shadow[key] {
		f.shadow[key] = true
		f.log.Warn("a remote worker has the id of a simulated worker of the channel; it is not offered work", "channel", ch.Short(), "worker", id)
	}
}

// Members implements [engine.Membership]: the members of both.
func (f *fleet) Members(ch engine.ChannelName) []string {
	ids := f.local.Members(ch)
	if f.remote != nil {
		for _, id := range f.remote.Members(ch) {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// CapacityChanged implements [engine.CapacitySignal]: a channel closed when
// either transport's signal for ch is. Until it is, the same one is
// returned, and one goroutine waits on the two.
func (f *fleet) CapacityChanged(ch engine.ChannelName) <-chan struct{} {
	if f.remote == nil {
		return f.local.CapacityChanged(ch)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.merged[ch]; ok {
		select {
		case <-c:
		default:
			return c
		}
	}
	lc, rc := f.local.CapacityChanged(ch), f.remote.CapacityChanged(ch)
	c := make(chan struct{})
	f.merged[ch] = c
	go func() {
		select {
		case <-lc:
		case <-rc:
		case <-f.stop:
			return // the node is closing: waits end with their contexts
		}
		close(c)
	}()
	return c
}

// Poke fires ch's capacity signal in both.
func (f *fleet) Poke(ch engine.ChannelName) {
	f.local.Poke(ch)
	if f.remote != nil {
		f.remote.Poke(ch)
	}
}

// AddChannels makes channels known to both.
func (f *fleet) AddChannels(chs ...engine.ChannelName) {
	f.local.AddChannels(chs...)
	if f.remote != nil {
		f.remote.AddChannels(chs...)
	}
}

// Open implements [engine.ConversationFactory].
func (f *fleet) Open(ctx context.Context, workflowID string, ch engine.ChannelName, id string) (engine.Conversation, error) {
	if f.remote == nil {
		return f.local.Open(ctx, workflowID, ch, id)
	}
	return &fleetConversation{f: f, workflowID: workflowID, ch: ch, id: id}, nil
}

// fleetConversation is a conversation over both transports: each attempt
// goes through the transport of the worker it links, whose own
// conversation is opened at its first attempt and closed with this one.
type fleetConversation struct {
	f          *fleet
	workflowID string
	ch         engine.ChannelName
	id         string

	local, remote engine.Conversation // opened at their first link
	cur           engine.Conversation // the current attempt's
}

// Link implements [engine.Conversation].
func (c *fleetConversation) Link(ctx context.Context, w engine.Worker) error {
	var err error
	if _, simulated := w.Participant.(*local.Worker); simulated {
		if c.local == nil {
			c.local, err = c.f.local.Open(ctx, c.workflowID, c.ch, c.id)
		}
		c.cur = c.local
	} else {
		if c.remote == nil {
			c.remote, err = c.f.remote.Open(ctx, c.workflowID, c.ch, c.id)
		}
		c.cur = c.remote
	}
	if err != nil {
		c.cur = nil
		return err
	}
	return c.cur.Link(ctx, w)
}

// Send implements [engine.Conversation].
func (c *fleetConversation) Send(ctx context.Context, msg engine.DispatchRequest) error {
	if c.cur == nil {
		return fmt.Errorf("conversation %s: send before link", c.id)
	}
	return c.cur.Send(ctx, msg)
}

// Receive implements [engine.Conversation].
func (c *fleetConversation) Receive(ctx context.Context) (engine.Event, error) {
	if c.cur == nil {
		return engine.Event{}, fmt.Errorf("conversation %s: receive before link", c.id)
	}
	return c.cur.Receive(ctx)
}

// Close implements [engine.Conversation]: it closes what it opened.
func (c *fleetConversation) Close() error {
	var errs []error
	for _, conv := range []engine.Conversation{c.local, c.remote} {
		if conv != nil {
			errs = append(errs, conv.Close())
		}
	}
	return errors.Join(errs...)
}
