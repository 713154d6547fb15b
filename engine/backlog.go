package engine

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// roundDeclines bounds the script calls one look at a channel's backlog
// spends on activities held back before (the router chose none or a full
// worker, or every worker the activity may still use was full): however
// many are held back, a capacity change asks at most this many of them
// again, the one asked longest ago first. An activity's first turn with a
// free slot is not counted: each activity has it once, when it joins or at
// the first change after, so it costs one call in the activity's life, not
// one at every change.
const roundDeclines = 16

// roundAhead is how many held-back activities one look at the backlog
// offers a turn ahead of newer fresh ones (by age). One is enough for none
// to starve under a steady stream of new activities: each held-back one
// comes to the front of the held-back list in turn. More would cost a
// script call per change for each activity a script holds back for long
// (one waiting for its preferred worker, say), on every change.
const roundAhead = 1

// backlog is the queue of one channel's waiting activities. A goroutine
// (watch) runs while it holds any: at each capacity change, and when an
// activity joins, it offers the waiting activities a turn, one at a time;
// an activity given its turn tries to be placed, in its own goroutine, and
// says how it went. The goroutine ends when the queue empties.
//
// The activities are in two lists. fresh holds those never held back, oldest
// first: they are placed in the order they came. held holds those held back
// on a turn, the one held back longest ago first; one held back again goes
// to its end. A round offers the first untried held-back activity a turn
// before the fresh ones if it joined the queue before them (at most
// roundAhead such turns a round), then the fresh ones, then the held-back
// ones again, within the round's budget of held-back turns (roundDeclines).
// So held-back activities block no one behind them, each is asked again in
// turn, and a stream of newer activities does not keep one waiting for
// ever.
type backlog struct {
	waiting atomic.Int32 // fresh.Len() + held.Len(), read without the lock

	mu       sync.Mutex
	fresh    list.List     // of *waiter, never held back, oldest first
	held     list.List     // of *waiter, held back, least recently first
	watching bool          // watch is running
	gen      uint64        // capacity changes seen by watch
	joined   uint64        // activities that joined, for their order
	kick     chan struct{} // an activity joined, or the last one left
}

// waiter is one activity in a backlog.
type waiter struct {
	turn   chan struct{}  // the activity's turn to try, from watch
	result chan tryResult // how the try went, to watch
	gone   chan struct{}  // closed when the activity leaves the queue
	elem   *list.Element  // in fresh or held; nil once it left
	in     *list.List     // the list elem is in
	tried  uint64         // the capacity generation of its last try, +1 (0: never tried)
	order  uint64         // when it joined: the backlog's joined count then
	narrow bool           // it has excluded workers: no free slot for it may still leave one for others
}

// tryResult is how an activity's turn went.
type tryResult uint8

const (
	tryPlaced   tryResult = iota + 1 // it took a slot and left the queue
	tryDeclined                      // the router chose none or a full worker
	tryNoSlot                        // no candidate had a free slot
	tryEnded                         // it left for another reason (an error)
)

func newBacklog() *backlog { return &backlog{kick: make(chan struct{}, 1)} }

// len returns how many activities wait.
func (b *backlog) len() int { return int(b.waiting.Load()) }

// join adds an activity at the end of the queue, unless max already wait,
// and starts watch if it is not running. It returns nil when the queue is
// full.
func (b *backlog) join(max int, narrow bool, watch func()) *waiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fresh.Len()+b.held.Len() >= max {
		return nil
	}
	b.joined++
	w := &waiter{turn: make(chan struct{}, 1), result: make(chan tryResult, 1), gone: make(chan struct{}), narrow: narrow,
		order: b.joined}
	w.elem, w.in = b.fresh.PushBack(w), &b.fresh
	b.waiting.Add(1)
	if !b.watching {
		b.watching = true
		go watch()
	}
	b.poke()
	return w
}

// poke makes watch look at the queue again.
func (b *backlog) poke() {
	select {
	case b.kick <- struct{}{}:
	default: // a look is due already
	}
}

// leave takes w out of the queue; it is safe to call more than once.
func (b *backlog) leave(w *waiter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.elem == nil {
		return
	}
	w.in.Remove(w.elem)
	b.waiting.Add(-1)
	w.elem, w.in = nil, nil
	close(w.gone)
	if b.fresh.Len()+b.held.Len() == 0 {
		b.poke() // so that watch sees the queue empty and ends
	}
}

// holdBack moves w, held back on its turn, to the end of held, and
// reports whether it was fresh.
func (b *backlog) holdBack(w *waiter) (fresh bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.elem == nil {
		return false
	}
	fresh = w.in == &b.fresh
	w.in.Remove(w.elem)
	w.elem, w.in = b.held.PushBack(w), &b.held
	return fresh
}

// watch offers the waiting activities their turns while any wait: after
// each capacity change of the channel, and after an activity joins.
// changed is the channel's CapacityChanged.
func (b *backlog) watch(changed func() <-chan struct{}) {
	var prev <-chan struct{}
	for {
		// Before the round: a change during it closes next, which ends
		// the round and starts another. A channel other than the last one
		// means the last one was closed: the capacity changed since,
		// whatever woke us.
		next := changed()
		if prev != nil && next != prev {
			b.mu.Lock()
			b.gen++
			b.mu.Unlock()
		}
		prev = next
		b.round(next)
		b.mu.Lock()
		if b.fresh.Len()+b.held.Len() == 0 {
			b.watching = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		select {
		case <-next:
		case <-b.kick:
		}
	}
}

// round offers turns to the activities not yet tried since the last
// capacity change, fresh ones first (oldest first), then held-back ones
// (held back longest ago first). It stops when an activity finds no free
// slot for anyone (none can be placed), after roundDeclines held-back
// activities were held back again, or when next says the capacity
// changed: the round that follows begins again with the oldest activity,
// so that a slot freed now goes to it rather than to whoever is next in
// this round.
func (b *backlog) round(next <-chan struct{}) {
	select {
	case <-next:
		next = nil // changed already: the round goes on, and the next one follows at once
	default:
	}
	declines, ahead := 0, 0
	for {
		select {
		case <-next:
			return
		default:
		}
		w, jumped := b.nextUntried(ahead < roundAhead, declines < roundDeclines)
		if w == nil {
			return
		}
		if jumped {
			ahead++
		}
		w.turn <- struct{}{}
		var r tryResult
		select {
		case r = <-w.result:
		case <-w.gone:
			r = tryEnded
		}
		if r == tryNoSlot && !w.narrow {
			return // no candidate has room: nobody can be placed
		}
		// Declined, or no room on the workers it may use (others may
		// have some): it goes to the end of the held-back ones. A
		// held-back one held back again spends the round's budget.
		if (r == tryDeclined || r == tryNoSlot) && !b.holdBack(w) {
			declines++
		}
	}
}

// nextUntried returns the next activity to offer a turn, marking it
// tried, or nil: of the activities not tried since the last capacity
// change, the first held-back one if ahead allows and it joined before the
// first fresh one (jumped: it goes ahead of a newer one); else the first
// fresh one; else, if held allows, the first held-back one.
func (b *backlog) nextUntried(ahead, held bool) (w *waiter, jumped bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.firstUntried(&b.fresh)
	var h *waiter
	if held {
		h = b.firstUntried(&b.held)
	}
	switch {
	case h != nil && f != nil && ahead && h.order < f.order:
		w, jumped = h, true
	case f != nil:
		w = f
	default:
		w = h
	}
	if w != nil {
		w.tried = b.gen + 1
	}
	return w, jumped
}

// firstUntried returns the first activity of l not tried since the last
// capacity change, or nil. b.mu is held.
func (b *backlog) firstUntried(l *list.List) *waiter {
	for e := l.Front(); e != nil; e = e.Next() {
		if w := e.Value.(*waiter); w.tried != b.gen+1 {
			return w
		}
	}
	return nil
}

// backlogs holds a backlog per channel, made when the channel first has an
// activity that cannot be placed. Looking one up takes no lock.
type backlogs struct{ m sync.Map } // ChannelName → *backlog

func (bs *backlogs) of(ch ChannelName) *backlog {
	if b, ok := bs.m.Load(ch); ok {
		return b.(*backlog)
	}
	b, _ := bs.m.LoadOrStore(ch, newBacklog())
	return b.(*backlog)
}

// waiting returns how many activities wait on the channel.
func (bs *backlogs) waiting(ch ChannelName) int {
	if b, ok := bs.m.Load(ch); ok {
		return b.(*backlog).len()
	}
	return 0
}
