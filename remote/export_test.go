package remote

import (
	"strings"
	"sync"
)

// EndGrace ends the reconnect grace of exited worker id now, as its timer
// does when it fires: the conformance suite makes a killed worker leave
// without waiting for a timer.
func EndGrace(t *Transport, id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.workers[id]
	if w == nil || !w.gone {
		return false
	}
	if w.graceEnd != nil {
		w.graceEnd.Stop()
	}
	t.forget(w)
	return true
}

// Hold keeps the transport's lock until the returned func is called, so
// that its subscriptions' handlers wait and their messages pile up.
func Hold(t *Transport) (release func()) {
	t.mu.Lock()
	return t.mu.Unlock
}

// HoldInbox installs test hooks in t. The inbox handler waits, before it
// handles its next message that is not an exit marker, until release is
// called; held receives that message's subject once it waits. advisories
// receives a value each time the transport has handled a disconnect
// advisory. release may be called more than once.
func HoldInbox(t *Transport) (held <-chan string, advisories <-chan struct{}, release func()) {
	h := make(chan string, 1)
	adv := make(chan struct{}, 16)
	gate := make(chan struct{})
	var holding, released sync.Once
	t.hooks.Store(&testHooks{
		inbox: func(subject string) {
			if strings.Contains(strings.TrimPrefix(subject, t.inbox+"."), ".") {
				return // an exit marker
			}
			holding.Do(func() {
				h <- subject
				<-gate
			})
		},
		disconnected: func() { adv <- struct{}{} },
	})
	return h, adv, func() { released.Do(func() { close(gate) }) }
}

// Exited returns a channel closed when the current incarnation of worker
// id exits; nil if there is no such worker.
func Exited(t *Transport, id string) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.workers[id]; w != nil {
		return w.done
	}
	return nil
}

// Known reports whether the transport still holds a worker id.
func Known(t *Transport, id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.workers[id] != nil
}

// EndLeftGrace ends the grace of deregistered worker id now, as its
// timer does when it fires.
func EndLeftGrace(t *Transport, id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.workers[id]
	if w == nil || !w.left {
		return false
	}
	if w.graceEnd != nil {
		w.graceEnd.Stop()
	}
	w.graceOver = true
	t.dropLeft(w)
	return true
}
