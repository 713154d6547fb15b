// Package broadcast is a wake-up for everyone waiting on a change: the
// capacity signals of the worker pools (packages local and remote) and
// the scenario runner's "something changed" are each one [Signal].
package broadcast

import (
	"sync"
	"sync/atomic"
)

// Signal is a broadcast, by closing a Go channel, to everyone who asked
// for it since the last [Signal.Notify]. A notify that no one waits for is
// one atomic load: nothing is allocated and no lock is taken, so that a
// frequent change (a slot freed) stays cheap when nothing waits. The zero
// value is ready to use; a Signal must not be copied after first use.
type Signal struct {
	wanted atomic.Bool   // ch is not nil: someone asked since the last notify
	mu     sync.Mutex    // guards ch and the writes of wanted
	ch     chan struct{} // closed by the next notify; made by the first wait after one
}

// Wait returns the channel the next Notify closes. Look at what may have
// changed after calling it, so that no change is missed: a change made
// after that look notifies after the wait was registered.
func (s *Signal) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
		s.wanted.Store(true)
	}
	return s.ch
}

// Waited reports whether someone called Wait since the last Notify: one
// atomic load, for a caller whose own check before notifying costs more.
func (s *Signal) Waited() bool { return s.wanted.Load() }

// Notify wakes everyone who called Wait since the last Notify.
func (s *Signal) Notify() {
	if !s.wanted.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
		s.wanted.Store(false)
	}
}
