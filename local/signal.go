package local

import (
	"sync"
	"sync/atomic"
)

// signal is one channel's capacity signal: a broadcast, by closing a Go
// channel, to everyone who asked for it since the last one. A notify that
// no one waits for is one atomic load: nothing is allocated and no lock is
// taken, so that freeing a slot stays cheap when nothing waits in the
// backlog.
type signal struct {
	wanted atomic.Bool   // ch is not nil: someone asked since the last notify
	mu     sync.Mutex    // guards ch and the writes of wanted
	ch     chan struct{} // closed by the next notify; made by the first wait after one
}

// wait returns the channel the next notify closes. Look at the capacity
// after calling it, so that no change is missed: a change made after that
// look notifies after wanted was set.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
		s.wanted.Store(true)
	}
	return s.ch
}

// notify wakes everyone who asked since the last notify.
func (s *signal) notify() {
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
