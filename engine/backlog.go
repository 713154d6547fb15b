package engine

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// roundDeclines bounds the script calls one look at a channel's backlog
// spends on activities that its router then declines (it chose none, or a
// full worker): with activities held back at the front, a capacity change
// costs at most this many calls beyond one per activity placed.
const roundDeclines = 16

// backlog is the queue of one channel's waiting activities, oldest first.
// A goroutine (watch) runs while it holds any: at each capacity change, and
// when an activity joins, it offers the waiting activities a turn, oldest
// first, one at a time; an activity given its turn tries to be placed, in
// its own goroutine, and says how it went. The goroutine ends when the
// queue empties.
type backlog struct {
	waiting atomic.Int32 // queue.Len(), read without the lock

	mu       sync.Mutex
	queue    list.List     // of *waiter
	watching bool          // watch is running
	gen      uint64        // capacity changes seen by watch
	kick     chan struct{} // an activity joined, or the last one left
}

// waiter is one activity in a backlog.
type waiter struct {
	turn   chan struct{}  // the activity's turn to try, from watch
	result chan tryResult // how the try went, to watch
	gone   chan struct{}  // closed when the activity leaves the queue
	elem   *list.Element
	tried  uint64 // the capacity generation of its last try, +1 (0: never tried)
	narrow bool   // it has excluded workers: no free slot for it may still leave one for others
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
	if b.queue.Len() >= max {
		return nil
	}
	w := &waiter{turn: make(chan struct{}, 1), result: make(chan tryResult, 1), gone: make(chan struct{}), narrow: narrow}
	w.elem = b.queue.PushBack(w)
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
	b.queue.Remove(w.elem)
	b.waiting.Add(-1)
	w.elem = nil
	close(w.gone)
	if b.queue.Len() == 0 {
		b.poke() // so that watch sees the queue empty and ends
	}
}

// watch offers the waiting activities their turns while any wait: after
// each capacity change of the channel, and after an activity joins.
// changed is the channel's CapacityChanged.
func (b *backlog) watch(changed func() <-chan struct{}) {
	var prev <-chan struct{}
	for {
		// Before the round: a change during it closes next and starts
		// another. A channel other than the last one means the last one
		// was closed: the capacity changed since, whatever woke us.
		next := changed()
		if prev != nil && next != prev {
			b.mu.Lock()
			b.gen++
			b.mu.Unlock()
		}
		prev = next
		b.round()
		b.mu.Lock()
		if b.queue.Len() == 0 {
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

// round offers turns, oldest first, to the activities not yet tried since
// the last capacity change: it stops when an activity finds no free slot
// (none can be placed), or after roundDeclines activities were declined by
// their router. An activity that joined since is tried even if older ones
// were declined: they do not block it.
func (b *backlog) round() {
	declines := 0
	for {
		w := b.nextUntried()
		if w == nil {
			return
		}
		w.turn <- struct{}{}
		var r tryResult
		select {
		case r = <-w.result:
		case <-w.gone:
			r = tryEnded
		}
		switch r {
		case tryNoSlot:
			if !w.narrow {
				return // no candidate has room: nobody can be placed
			}
			declines++
		case tryDeclined:
			declines++
		}
		if declines >= roundDeclines {
			return
		}
	}
}

// nextUntried returns the oldest activity not tried since the last
// capacity change, marking it tried, or nil.
func (b *backlog) nextUntried() *waiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	for e := b.queue.Front(); e != nil; e = e.Next() {
		w := e.Value.(*waiter)
		if w.tried != b.gen+1 {
			w.tried = b.gen + 1
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
