package router

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/aion-dispatch/dispatch/engine"
)

// DefaultRecentDecisions is how many of a channel's decisions
// `dispatch run --watch` keeps for the reload gate ([KeepRecent]).
const DefaultRecentDecisions = 256

// maxRecentInput is the largest request input a decision may carry to be
// kept: the ring holds the requests themselves, and a few large payloads
// should not pin megabytes per channel.
const maxRecentInput = 64 << 10

// Sample is one routing decision a channel made: what its router saw and
// the id it chose ("" for none). The selection's candidates carry their
// ids and states, not their processes.
type Sample struct {
	Selection engine.Selection
	Chosen    string
}

// recent keeps the last decisions of one channel in a ring. Adding one
// takes a number from a counter the channel's dispatches share and a lock
// on its entry only, so concurrent dispatches of a channel wait for each
// other only when the ring wraps onto an entry being written; the entry
// copies the selection into buffers of its own, reused from one decision to
// the next, so the caller may reuse its input and candidates. The ring
// (66 KB for 256 entries before any decision is in it) is made on the
// channel's first decision, so that a channel without traffic costs
// nothing: made with the slot, 10,000 idle channels held 660 MB of empty
// rings.
type recent struct {
	size    int
	next    atomic.Uint64
	entries atomic.Pointer[[]recentEntry] // nil until the first decision
}

type recentEntry struct {
	mu     sync.Mutex
	n      uint64 // 1 + the decision's position in the channel's history; 0 if empty
	sel    engine.Selection
	chosen string
	input  []byte   // sel.Request.Input.Data's bytes
	tags   []string // the candidates' tags, one after another
}

func newRecent(size int) *recent {
	if size <= 0 {
		return nil
	}
	return &recent{size: size}
}

// ring returns the entries, making them if no decision has been kept yet.
func (r *recent) ring() []recentEntry {
	if es := r.entries.Load(); es != nil {
		return *es
	}
	es := make([]recentEntry, r.size)
	if r.entries.CompareAndSwap(nil, &es) {
		return es
	}
	return *r.entries.Load() // made by a concurrent first decision
}

// keepOneIn is how sparsely a full ring keeps decisions: about one in
// keepOneIn, at random, so that a busy channel pays for a copy on one
// decision in eight, and its ring spans eight times as many decisions.
const keepOneIn = 8

// add keeps the decision, reusing the entry's buffers: every decision until
// the ring is full, then about one in keepOneIn.
func (r *recent) add(in engine.Selection, chosen string) {
	if r == nil || len(in.Request.Input.Data) > maxRecentInput {
		return
	}
	if r.next.Load() >= uint64(r.size) && rand.Uint32()%keepOneIn != 0 {
		return
	}
	entries := r.ring()
	n := r.next.Add(1)
	e := &entries[(n-1)%uint64(len(entries))]
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n > n {
		return // a later decision got here first
	}
	cands, excluded, tags := e.sel.Candidates[:0], e.sel.Excluded[:0], e.tags[:0]
	for _, w := range in.Candidates {
		w.Participant = nil // the ring must not keep a worker alive
		at := len(tags)
		tags = append(tags, w.State.Tags...)
		w.State.Tags = tags[at:len(tags):len(tags)]
		cands = append(cands, w)
	}
	e.input = append(e.input[:0], in.Request.Input.Data...)
	e.tags = tags
	e.sel = in
	e.sel.Candidates, e.sel.Excluded = cands, append(excluded, in.Excluded...)
	e.sel.Request.Input.Data = e.input
	e.chosen, e.n = chosen, n
}

// samples returns copies of the kept decisions, oldest first.
func (r *recent) samples() []Sample {
	if r == nil {
		return nil
	}
	es := r.entries.Load()
	if es == nil {
		return nil
	}
	entries := *es
	type kept struct {
		n uint64
		s Sample
	}
	var all []kept
	for i := range entries {
		e := &entries[i]
		e.mu.Lock()
		if e.n > 0 {
			sel := e.sel
			sel.Candidates, sel.Excluded = slices.Clone(sel.Candidates), slices.Clone(sel.Excluded)
			for i := range sel.Candidates {
				sel.Candidates[i].State.Tags = slices.Clone(sel.Candidates[i].State.Tags)
			}
			sel.Request.Input.Data = slices.Clone(sel.Request.Input.Data)
			all = append(all, kept{e.n, Sample{Selection: sel, Chosen: e.chosen}})
		}
		e.mu.Unlock()
	}
	slices.SortFunc(all, func(a, b kept) int {
		switch {
		case a.n < b.n:
			return -1
		case a.n > b.n:
			return 1
		}
		return 0
	})
	out := make([]Sample, len(all))
	for i, k := range all {
		out[i] = k.s
	}
	return out
}
