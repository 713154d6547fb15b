package router

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/aion-dispatch/dispatch/engine"
)

// Slot holds the active router of one channel. A dispatch reads the slot at
// each selection, so a swap takes effect from the next selection and never
// disturbs a call already running. With [KeepRecent], a slot also keeps
// the channel's last decisions, for the reload gate ([Slot.Recent],
// [Gate]).
type Slot struct {
	cur    atomic.Pointer[slotEntry]
	recent *recent
}

type slotEntry struct{ r engine.Router }

// Option configures a [Slot], or every slot of a [Table].
type Option func(*slotOptions)

type slotOptions struct{ recent int }

// KeepRecent makes a slot keep its channel's last n decisions that did not
// fail, for the reload gate: [DefaultRecentDecisions] is the number
// `dispatch run --watch` keeps. Keeping them costs a decision a copy of its
// selection (about 0.1 µs at 16 candidates); without KeepRecent, or with
// n ≤ 0, a slot keeps none.
func KeepRecent(n int) Option { return func(o *slotOptions) { o.recent = n } }

func applyOptions(opts []Option) slotOptions {
	var o slotOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// NewSlot returns a slot holding r.
func NewSlot(r engine.Router, opts ...Option) *Slot {
	return newSlot(r, applyOptions(opts))
}

func newSlot(r engine.Router, o slotOptions) *Slot {
	s := &Slot{recent: newRecent(o.recent)}
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
// really saw, and what was chosen; none unless the slot was made with
// [KeepRecent]. Decisions on inputs over 64 KiB are not kept.
func (s *Slot) Recent() []Sample { return s.recent.samples() }

// Table routes each selection to the slot of its channel. Lookups take no
// lock: the map of slots is replaced, never modified, and a channel's router
// changes in its own slot. So swapping the router of a channel already in
// the table copies nothing, and the map is copied only when channels are
// added or removed: once per [Table.SetAll] or [Table.Remove] call, however
// many channels it names.
type Table struct {
	mu    sync.Mutex
	slots atomic.Pointer[map[engine.ChannelName]*Slot]
	opts  slotOptions // of every slot it makes
}

// NewTable returns an empty table whose slots are made with opts.
func NewTable(opts ...Option) *Table {
	t := &Table{opts: applyOptions(opts)}
	t.slots.Store(&map[engine.ChannelName]*Slot{})
	return t
}

// Slot returns the slot of channel.
func (t *Table) Slot(channel engine.ChannelName) (*Slot, bool) {
	s, ok := (*t.slots.Load())[channel]
	return s, ok
}

// Set makes r the router of channel, creating its slot if needed, and
// returns the slot. Each call that creates a slot copies the table's map:
// add many channels with one [Table.SetAll].
func (t *Table) Set(channel engine.ChannelName, r engine.Router) *Slot {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := (*t.slots.Load())[channel]; ok {
		s.Store(r)
		return s
	}
	s := newSlot(r, t.opts)
	t.publish(map[engine.ChannelName]*Slot{channel: s}, nil)
	return s
}

// SetAll makes each router of routes the router of its channel, as Set
// does, copying the table's map at most once.
func (t *Table) SetAll(routes map[engine.ChannelName]engine.Router) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.slots.Load()
	added := make(map[engine.ChannelName]*Slot)
	for ch, r := range routes {
		if s, ok := cur[ch]; ok {
			s.Store(r)
			continue
		}
		added[ch] = newSlot(r, t.opts)
	}
	t.publish(added, nil)
}

// Remove drops channels; later selections on them fail with
// [engine.ErrUnknownChannel]. The table's map is copied at most once.
func (t *Table) Remove(channels ...engine.ChannelName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.publish(nil, channels)
}

// publish replaces the map of slots with a copy that has the slots of add
// and lacks the channels of remove, unless that copy would be the same.
// t.mu is held.
func (t *Table) publish(add map[engine.ChannelName]*Slot, remove []engine.ChannelName) {
	cur := *t.slots.Load()
	known := func(ch engine.ChannelName) bool { _, ok := cur[ch]; return ok }
	if len(add) == 0 && !slices.ContainsFunc(remove, known) {
		return
	}
	next := maps.Clone(cur) // copies the map's storage whole, faster than inserting every entry again
	maps.Copy(next, add)
	for _, ch := range remove {
		delete(next, ch)
	}
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
