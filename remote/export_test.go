package remote

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
