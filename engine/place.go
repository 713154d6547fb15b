package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// placement is a worker that took an attempt: linked, one of its slots
// held for it.
type placement struct {
	worker  Worker
	version RouterVersion       // the router that chose it
	seen    []ConsumerStateView // the candidates it chose from, for the journal
	waited  time.Duration       // how long the activity waited in the backlog first
}

// notNow is why no worker can take the activity now. It wraps ErrNoWorkers,
// which a dispatch that does not wait (FailWhenFull) fails with.
type notNow struct {
	err error
	// declined: the router chose none or a full worker (not: no candidate
	// had a free slot, or there was no candidate).
	declined bool
}

// place finds a worker with a free slot for the attempt: at once if it can
// and no older activity of the channel waits; otherwise it waits in the
// channel's backlog, as the policy says, until a worker takes it or a
// timeout or ctx ends the wait.
func (c *call) place(ctx context.Context, excluded []string) (placement, error) {
	waits := c.d.capacity != nil && !c.policy.FailWhenFull
	if !waits || c.d.backlogs.waiting(c.ch) == 0 {
		p, why, err := c.try(ctx, excluded)
		switch {
		case err != nil:
			return placement{}, err
		case why == nil:
			return p, nil
		case !waits:
			return placement{}, why.err
		}
		return c.wait(ctx, excluded, why)
	}
	// Older activities wait: this one waits behind them, and is tried in
	// turn.
	return c.wait(ctx, excluded, nil)
}

// try places the attempt if a worker can take it now: the router chooses
// among the candidates (the snapshot without the excluded workers), and the
// worker it chooses must have a free slot, which Link takes. Without a
// candidate with a free slot the router is not asked. why says why it could
// not; err is a failure that ends the dispatch.
func (c *call) try(ctx context.Context, excluded []string) (p placement, why *notNow, err error) {
	snapshot, err := c.d.pool.Workers(ctx, c.ch, c.req)
	if err != nil {
		return placement{}, nil, fmt.Errorf("worker pool: %w", err)
	}
	membership, knows := c.d.pool.(Membership)
	if !knows {
		c.saw(snapshot)
	}
	sel := NewSelection(c.ch, c.convID, c.attempt, c.req, snapshot, excluded)
	cands := sel.Candidates
	if len(cands) == 0 {
		var members map[string]bool
		if knows {
			members = map[string]bool{}
			for _, id := range membership.Members(c.ch) {
				members[id] = true
			}
		} else {
			members = c.members()
		}
		if len(members) > 0 && allIn(members, excluded) {
			// Every worker of the channel failed it: a poison activity
			// is not re-routed for ever. The workflow engine's retry is a
			// new conversation.
			return placement{}, nil, noWorkers(snapshot, excluded)
		}
		// No worker now, or the ones there failed it while others are
		// away (restarting): one may come.
		return placement{}, &notNow{err: noWorkers(snapshot, excluded)}, nil
	}
	if !slices.ContainsFunc(cands, func(w Worker) bool { return w.State.HasCapacity() }) {
		return placement{}, &notNow{err: allFull(cands)}, nil
	}
	var seen []ConsumerStateView // what the journal records, taken before the router runs
	if c.d.rec != nil {
		seen = views(cands)
	}
	dec, err := c.d.router.Select(ctx, sel)
	if err != nil {
		c.failedBy = dec.Version
		return placement{}, nil, fmt.Errorf("%w: %w", ErrRouting, err)
	}
	w, err := CheckDecision(cands, dec)
	if errors.Is(err, ErrRouting) {
		c.failedBy = dec.Version
		return placement{}, nil, err
	}
	if err != nil { // the router chose none, or a full worker
		return placement{}, &notNow{err: err, declined: true}, nil
	}
	c.worker = w.ID()
	if err := c.conv.Link(ctx, w); err != nil {
		c.worker = ""
		if errors.Is(err, ErrWorkerFull) { // its last slot went to another activity meanwhile
			return placement{}, &notNow{err: choseFull(dec.Version, w), declined: true}, nil
		}
		return placement{}, nil, fmt.Errorf("link: %w", err)
	}
	return placement{worker: w, version: dec.Version, seen: seen}, nil, nil
}

// requeue puts an activity that its worker did not start (why says which
// worker, and why) back in the channel's backlog, behind the activities
// already waiting, which records activity_waiting. A channel that does not
// wait fails it with why's NoWorkersAvailable.
func (c *call) requeue(ctx context.Context, excluded []string, why *notNow) (placement, error) {
	if c.d.capacity == nil || c.policy.FailWhenFull {
		return placement{}, why.err
	}
	return c.wait(ctx, excluded, why)
}

// wait puts the activity in the channel's backlog (why says why it could
// not be placed, or is nil when it did not try, behind older activities)
// and tries again at each turn the backlog gives it, until it is placed,
// the request's schedule-to-start timeout passes, or ctx ends.
func (c *call) wait(ctx context.Context, excluded []string, why *notNow) (placement, error) {
	b := c.d.backlogs.of(c.ch)
	max := c.policy.MaxBacklog
	if max <= 0 {
		max = DefaultMaxBacklog
	}
	msg := "older activities are waiting"
	if why != nil {
		msg = waitReason(why.err)
	}
	if n := b.len(); n >= max {
		return placement{}, backlogFull(c.ch, n, max)
	}
	start := time.Now()
	// The watcher outlives this call: it captures the signal and the
	// channel, not c (which would move every call to the heap).
	capacity, ch := c.d.capacity, c.ch
	w := b.join(max, len(excluded) > 0, func() { b.watch(func() <-chan struct{} { return capacity.CapacityChanged(ch) }) })
	if w == nil {
		return placement{}, backlogFull(c.ch, max, max)
	}
	defer b.leave(w)
	// Recorded once in the queue (a full one records no wait), and before
	// the activity takes its first turn, which only it can.
	if err := c.record(ctx, &Operation{Kind: OpActivityWaiting, State: StateScheduled, Message: msg, Attempt: c.attempt}); err != nil {
		return placement{}, err
	}
	var timeout <-chan time.Time
	if s2s := c.req.ScheduleToStart; s2s > 0 {
		t := time.NewTimer(s2s)
		defer t.Stop()
		timeout = t.C
	}
	for {
		select {
		case <-w.turn:
		case <-timeout:
			return placement{}, &TimeoutError{Timeout: ErrScheduleToStartTimeout, After: c.req.ScheduleToStart}
		case <-ctx.Done():
			return placement{}, ctx.Err()
		}
		p, why, err := c.try(ctx, excluded)
		switch {
		case err != nil:
			b.leave(w)
			w.result <- tryEnded
			return placement{}, err
		case why == nil:
			b.leave(w)
			w.result <- tryPlaced
			p.waited = time.Since(start)
			return p, nil
		case why.declined:
			w.result <- tryDeclined
		default:
			w.result <- tryNoSlot
		}
	}
}

// waitReason is the text of why an activity waits, without the
// NoWorkersAvailable it would fail with if it did not.
func waitReason(err error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, ErrNoWorkers.Error()+": "); ok {
		return rest
	}
	return msg
}

// allFull is why no candidate can take an activity: every one is full.
func allFull(cands []Worker) error {
	if len(cands) == 1 {
		w := cands[0]
		return fmt.Errorf("%w: no free slot: the 1 candidate is full (%s, %d of %d)", ErrNoWorkers, w.ID(), w.State.InFlight, w.State.MaxInFlight)
	}
	return fmt.Errorf("%w: no free slot: all %d candidates are full (%s)", ErrNoWorkers, len(cands), listIDs(cands))
}

// backlogFull is the error of a dispatch that would make the channel's
// backlog longer than it may be.
func backlogFull(ch ChannelName, n, max int) error {
	return fmt.Errorf("%w: %d activities already wait on %s, its max_backlog (%d); add workers, raise max_backlog, or set when_full: fail to fail at once",
		ErrBacklogFull, n, ch.Short(), max)
}

// routerWord is "the script" for a script, "the router" otherwise.
func routerWord(v RouterVersion) string {
	if v.Hash != "" { // only scripts have a content hash
		return "the script"
	}
	return "the router"
}

// saw notes the workers of a snapshot as seen by this activity.
func (c *call) saw(snapshot []Worker) {
	if !c.looked {
		c.first, c.looked = snapshot, true
		return
	}
	for _, w := range snapshot {
		if c.seen == nil {
			c.seen = map[string]bool{}
		}
		c.seen[w.ID()] = true
	}
}

// members is the set of workers this activity has seen.
func (c *call) members() map[string]bool {
	set := make(map[string]bool, len(c.seen)+len(c.first))
	for id := range c.seen {
		set[id] = true
	}
	for _, w := range c.first {
		set[w.ID()] = true
	}
	return set
}

// allIn reports whether every id of set is in ids.
func allIn(set map[string]bool, ids []string) bool {
	for id := range set {
		if !slices.Contains(ids, id) {
			return false
		}
	}
	return true
}
