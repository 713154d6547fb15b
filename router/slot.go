package router

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/aion-dispatch/dispatch/engine"
)

// Slot holds the active router of one channel. A dispatch reads the slot at
// each selection, so a swap takes effect from the next selection and never
// disturbs a call already running. A slot made by [NewSlot] also keeps the
// channel's last [DefaultRecentDecisions] decisions, for the reload gate
// ([Slot.Recent], [Gate]).
type Slot struct {
	cur    atomic.Pointer[slotEntry]
	recent *recent
}

type slotEntry struct{ r engine.Router }

// NewSlot returns a slot holding r.
func NewSlot(r engine.Router) *Slot {
	s := &Slot{recent: newRecent(DefaultRecentDecisions)}
	s.Store(r)
	return s
}

// Load returns the active router.
func (s *Slot) Load() engine.Router {
	if e := s.cur.Load(); e != nil {
		return e.r
	}
	return nil
}

// Store makes r the active router.
func (s *Slot) Store(r engine.Router) { s.cur.Store(&slotEntry{r: r}) }

// Swap makes r the active router and returns the one it replaces.
func (s *Slot) Swap(r engine.Router) engine.Router {
	if old := s.cur.Swap(&slotEntry{r: r}); old != nil {
		return old.r
	}
	return nil
}

// Select implements [engine.Router] with the router active now.
func (s *Slot) Select(ctx context.Context, in engine.Selection) (engine.Decision, error) {
	r := s.Load()
	if r == nil {
		return engine.Decision{}, fmt.Errorf("channel %s has no router", in.Channel.Short())
	}
	d, err := r.Select(ctx, in)
	if err == nil {
		s.recent.add(in, d.WorkerID)
	}
	return d, err
}

// Recent returns copies of the last decisions made through the slot that
// did not fail, oldest first: the requests and candidates the channel
// really saw, and what was chosen. Decisions on inputs over 64 KiB are not
// kept.
func (s *Slot) Recent() []Sample { return s.recent.samples() }

// Table routes each selection to the slot of its channel. Channels are added
// and removed copy-on-write, so lookups take no lock.
type Table struct {
	mu    sync.Mutex
	slots atomic.Pointer[map[engine.ChannelName]*Slot]
}

// NewTable returns an empty table.
func NewTable() *Table {
	t := &Table{}
	t.slots.Store(&map[engine.ChannelName]*Slot{})
	return t
}

// Slot returns the slot of channel.
func (t *Table) Slot(channel engine.ChannelName) (*Slot, bool) {
	s, ok := (*t.slots.Load())[channel]
	return s, ok
}

// Set makes r the router of channel, creating its slot if needed, and
// returns the slot.
func (t *Table) Set(channel engine.ChannelName, r engine.Router) *Slot {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.slots.Load()
	if s, ok := cur[channel]; ok {
		s.Store(r)
		return s
	}
	next := maps.Clone(cur)
	s := NewSlot(r)
	next[channel] = s
	t.slots.Store(&next)
	return s
}

// Remove drops channel; later selections on it fail with
// [engine.ErrUnknownChannel].
func (t *Table) Remove(channel engine.ChannelName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.slots.Load()
	if _, ok := cur[channel]; !ok {
		return
	}
	next := maps.Clone(cur)
	delete(next, channel)
	t.slots.Store(&next)
}

// Channels returns the channels in the table, in no particular order.
func (t *Table) Channels() []engine.ChannelName {
	cur := *t.slots.Load()
	out := make([]engine.ChannelName, 0, len(cur))
	for ch := range cur {
		out = append(out, ch)
	}
	return out
}

// Select implements [engine.Router] by delegating to the channel's slot.
func (t *Table) Select(ctx context.Context, in engine.Selection) (engine.Decision, error) {
	s, ok := t.Slot(in.Channel)
	if !ok {
		return engine.Decision{}, fmt.Errorf("%w: no router for %s", engine.ErrUnknownChannel, in.Channel.Short())
	}
	return s.Select(ctx, in)
}
