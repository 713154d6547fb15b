package remote

import "sync"

// signal is one channel's capacity signal: a broadcast, by closing a Go
// channel, to everyone who asked for it since the last one.
type signal struct {
	mu sync.Mutex
	ch chan struct{} // closed by the next notify; made by the first wait after one
}

// wait returns the channel the next notify closes.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// notify wakes everyone who asked since the last notify.
func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
