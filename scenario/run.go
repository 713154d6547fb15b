package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/broadcast"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

// errStuck ends a request that does not finish within the step's limit.
var errStuck = errors.New("the request never finished")

// Run runs the scenario and returns its journal: every operation in order,
// with seq numbers, no times, and conversation ids c1, c2, …, with the
// paths of the scenario, its config and its scripts relative to the
// scenario's directory. An error means the scenario could not run as
// written (or a replay step found a difference), not that its journal
// differs from the golden one, nor that a step's expectation was not met
// (see [Check]). Each step may take up to the scenario's Timeout, or until
// ctx's deadline if that is sooner.
func Run(ctx context.Context, s *Scenario) ([]engine.Operation, error) {
	ops, _, err := run(ctx, s)
	return ops, err
}

// run is [Run] that also checks the request steps' expectations: it
// returns those not met, in the order of the steps.
func run(ctx context.Context, s *Scenario) ([]engine.Operation, []Failure, error) {
	r := &runner{s: s, table: router.NewTable(), pool: local.NewPool(local.WithClock(stillClock{}), local.WithReportedLatency()), workers: map[WorkerRef]*scripted{}}
	r.rec.changed = &r.changed
	r.gate = newGate(r.pool, &r.changed)
	defer r.pool.Close(context.Background())
	defer r.gate.openUp() // the backlogs follow the pool from here on
	defer r.abandon()     // async dispatches still open after an error
	routes := make(map[engine.ChannelName]engine.Router, len(s.Config.Channels))
	names := make([]engine.ChannelName, 0, len(s.Config.Channels))
	for _, ch := range s.Config.Channels {
		routes[ch.Name] = ch.Router(s.Config.File)
		names = append(names, ch.Name)
	}
	r.table.SetAll(routes) // one copy of each map for all the channels
	r.pool.AddChannels(names...)
	for _, w := range s.Workers {
		if err := r.start(w); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", s.File, w.Line, err)
		}
	}
	backlogs := s.Config.BacklogPolicies()
	d, err := engine.NewDispatcher(engine.Options{Pool: r.gate, Router: r.table, Conversations: r.pool,
		Recorder: &r.rec, IDs: &engine.SequenceIDs{Prefix: "c"}, Capacity: r.gate,
		Backlog: func(ch engine.ChannelName) engine.BacklogPolicy { return backlogs[ch] }})
	if err != nil {
		return nil, nil, err
	}
	r.d = d
	for _, st := range s.Steps {
		if err := r.step(ctx, st); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", s.File, st.Line, err)
		}
	}
	for _, a := range r.async {
		if !isClosed(a.done) {
			a.cancel()
			if err := r.settle(ctx, a.done); err != nil {
				return nil, nil, fmt.Errorf("%s:%d: cancelling this async request: %w", s.File, a.step.Line, err)
			}
		}
		// An async request's expectation is checked once its dispatch is over.
		if f := check(s, a.step, happened(a.out, a.err, r.rec.ops())); f != nil {
			r.failures = append(r.failures, *f)
		}
	}
	r.async = nil
	slices.SortStableFunc(r.failures, func(a, b Failure) int { return a.Line - b.Line })
	return normalise(r.rec.ops(), s), r.failures, nil
}

// step runs one step and waits until the scenario is at rest again (see
// [runner.settle]).
func (r *runner) step(ctx context.Context, st Step) error {
	switch {
	case st.Request != nil && st.Request.Async:
		return r.dispatchAsync(ctx, st)
	case st.Request != nil:
		rctx, cancel := context.WithDeadlineCause(ctx, r.limit(ctx), errStuck)
		defer cancel()
		p, err := r.begin(rctx, st)
		if err != nil {
			return err
		}
		err = r.settle(rctx, p.done)
		stuck := rctx.Err() != nil // the step's limit or ctx, not the request's own timeouts
		if err != nil || stuck {
			p.cancel()
			<-p.done
		}
		// settle ends with errStuck only while the request runs; once it has
		// finished, a scenario that does not come to rest says why.
		if stuck && (err == nil || errors.Is(err, errStuck)) {
			return fmt.Errorf("the request did not finish within the scenario's timeout (%s): does it reach a worker that hangs or holds it (held: true), without a start_to_close?", r.timeout())
		}
		if err != nil {
			return err
		}
		r.done = append(r.done, outcome{req: *st.Request, res: p.out.Result, err: p.err})
		if f := check(r.s, st, happened(p.out, p.err, r.rec.ops())); f != nil {
			r.failures = append(r.failures, *f)
		}
		return nil
	case st.Swap != nil:
		ch, _ := r.s.Config.Channel(st.Swap.Channel)
		if st.Swap.Path != "" {
			r.table.Set(st.Swap.Channel, router.NewScript(st.Swap.Program, st.Swap.Path, ch.ScriptTimeout))
		} else {
			src := fmt.Sprintf("%s:%d (inline)", r.s.File, st.Line)
			r.table.Set(st.Swap.Channel, router.NewInlineScript(st.Swap.Program, src, ch.ScriptTimeout, r.s.File, st.Swap.LineOffset))
		}
		r.pool.Poke(st.Swap.Channel) // the new version may take what the old held back
	case st.AddWorker != nil:
		if err := r.start(*st.AddWorker); err != nil {
			return err
		}
	case st.RemoveWorker != nil:
		ref := *st.RemoveWorker
		w, ok := r.pool.Remove(ref.Channel, ref.ID)
		if !ok {
			return fmt.Errorf("remove_worker: %s has no worker %s", ref.Channel.Short(), ref.ID)
		}
		w.Drain("removed by the scenario")
		delete(r.workers, ref)
	case st.Release != nil:
		ref := *st.Release
		sw, ok := r.workers[ref]
		if !ok {
			return fmt.Errorf("release: %s has no worker %s", ref.Channel.Short(), ref.ID)
		}
		if !sw.release() {
			return fmt.Errorf("release: worker %s holds no activity (an action with held: true)", ref.ID)
		}
	case st.Replay:
		if err := r.replay(ctx); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	return r.settle(ctx, nil)
}

// limit returns until when a step may wait: the scenario's Timeout from
// now, or ctx's deadline if sooner.
func (r *runner) limit(ctx context.Context) time.Time {
	deadline := time.Now().Add(r.timeout())
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		return dl
	}
	return deadline
}

// timeout is the scenario's Timeout, or DefaultTimeout for a Scenario
// built without one.
func (r *runner) timeout() time.Duration {
	if r.s.Timeout > 0 {
		return r.s.Timeout
	}
	return DefaultTimeout
}

// pending is a dispatch of a request step.
type pending struct {
	step   Step
	conv   atomic.Pointer[string] // its conversation, nil until it is open, or if it ended before
	cancel context.CancelFunc
	done   chan struct{} // closed when Dispatch has returned, out and err set
	out    engine.Outcome
	err    error
}

// conversation returns the dispatch's conversation id, or "".
func (p *pending) conversation() string {
	if c := p.conv.Load(); c != nil {
		return *c
	}
	return ""
}

// begin starts a dispatch and returns once its conversation is open (or
// the dispatch is over, having opened none).
func (r *runner) begin(ctx context.Context, st Step) (*pending, error) {
	seen := r.rec.len()
	actx, cancel := context.WithCancel(ctx)
	p := &pending{step: st, cancel: cancel, done: make(chan struct{})}
	req := st.Request
	go func() { // ends with the dispatch, which its step or abandon waits for
		p.out, p.err = r.d.DispatchOutcome(actx, req.Channel.Namespace(), req.Request)
		close(p.done)
		r.changed.Notify()
	}()
	expire := time.NewTimer(time.Until(r.limit(ctx)))
	defer expire.Stop()
	for {
		wakeups := r.wakeups()
		ops := r.rec.from(seen)
		seen += len(ops)
		for _, op := range ops {
			if op.Kind == engine.OpConversationOpened {
				p.conv.Store(&op.ConversationID)
				return p, nil
			}
		}
		if isClosed(p.done) {
			return p, nil
		}
		if err := awaitChange(ctx, wakeups, expire.C); err != nil {
			if errors.Is(err, errExpired) {
				err = fmt.Errorf("the request opened no conversation within the scenario's timeout (%s)", r.timeout())
			}
			cancel()
			<-p.done
			return nil, err
		}
	}
}

// dispatchAsync starts a dispatch and returns once it is with a worker
// that hangs or holds it, or waits in the backlog, and the scenario is at
// rest. A dispatch that ends before that without reaching a worker (none
// could take it) is simply over; one that a worker answered at once is a
// mistake in the scenario.
func (r *runner) dispatchAsync(ctx context.Context, st Step) error {
	line := st.Line
	p, err := r.begin(ctx, st)
	if err != nil {
		return err
	}
	r.async = append(r.async, p)
	if err := r.settle(ctx, nil); err != nil {
		return err
	}
	if isClosed(p.done) && r.reached(p.conversation()) {
		return fmt.Errorf("the async request of line %d finished while the scenario went on; async needs a worker that hangs or holds it (held: true), or a wait in the backlog", line)
	}
	return nil
}

// reached reports whether the conversation was sent to a worker.
func (r *runner) reached(conv string) bool {
	for _, op := range r.rec.ops() {
		if op.ConversationID == conv && op.Kind == engine.OpMessageSent {
			return true
		}
	}
	return false
}

// abandon cancels the async dispatches still open and waits for them.
func (r *runner) abandon() {
	for _, a := range r.async {
		a.cancel()
		<-a.done
	}
	r.async = nil
}

type runner struct {
	s        *Scenario
	table    *router.Table
	pool     *local.Pool
	gate     *gate
	d        *engine.Dispatcher
	rec      collector
	changed  broadcast.Signal        // told of every change a wait for the scenario to be at rest looks at
	workers  map[WorkerRef]*scripted // the workers of the pool, by channel and id
	all      []*scripted             // every worker started, removed and exited ones included
	done     []outcome               // the requests so far and what came of them
	async    []*pending              // async requests, in order
	failures []Failure               // the expectations not met so far
}

type outcome struct {
	req Request
	res engine.ActivityResult
	err error
}

// scripted is a running scripted worker.
type scripted struct {
	spec    Worker
	changed *broadcast.Signal // told when running or parked changes
	ready   chan struct{}     // closed once w is set
	n       atomic.Int64      // requests received
	w       atomic.Pointer[local.Worker]
	running atomic.Int64 // handlers running
	parked  atomic.Int64 // of those, the ones that hang or hold an activity not yet released

	mu   sync.Mutex
	held []chan struct{} // the activities held, oldest first; closing one releases it
}

func (r *runner) start(spec Worker) error {
	sw := &scripted{spec: spec, changed: &r.changed, ready: make(chan struct{})}
	w, err := r.pool.Start(spec.Channel, local.WorkerConfig{ID: spec.ID, MaxInFlight: spec.MaxInFlight, Tags: spec.Tags,
		Labels:  spec.Labels,
		Handler: sw.handle})
	if err != nil {
		return fmt.Errorf("worker %s: %w", spec.ID, err)
	}
	sw.w.Store(w)
	close(sw.ready)
	r.workers[WorkerRef{spec.Channel, spec.ID}] = sw
	r.all = append(r.all, sw)
	return nil
}

// stillClock is the time of what a scenario's pool observes of its
// workers: it does not move, so that the figures a router sees are the
// same on every run. A worker's latency is its script's, every average
// one over all of the run's samples alike, and nothing decays or expires.
type stillClock struct{}

func (stillClock) Now() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

// handle does what the script says for this request.
func (sw *scripted) handle(ctx context.Context, req engine.ActivityRequest) engine.ActivityResult {
	sw.count(&sw.running, 1)
	defer sw.count(&sw.running, -1)
	<-sw.ready
	k := int(sw.n.Add(1)) - 1
	a := sw.spec.Script[min(k, len(sw.spec.Script)-1)]
	if a.Held && !sw.hold(ctx) {
		return engine.Failed("cancelled")
	}
	if a.Latency > 0 {
		t := time.NewTimer(a.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return engine.Failed("cancelled")
		case <-t.C:
		}
	}
	local.ReportLatency(ctx, a.Latency) // the script's latency is the worker's, however long the wait was
	switch a.Kind {
	case Complete:
		return engine.Completed(a.Output)
	case Fail:
		return engine.Failed(a.Message)
	case Exit:
		sw.w.Load().Stop(a.Message)
		return engine.ActivityResult{}
	}
	sw.count(&sw.parked, 1) // Hang
	defer sw.count(&sw.parked, -1)
	<-ctx.Done()
	return engine.Failed("cancelled")
}

// count adds delta to one of the worker's counters and tells the runner.
func (sw *scripted) count(n *atomic.Int64, delta int64) {
	n.Add(delta)
	sw.changed.Notify()
}

// hold waits until a release step lets the activity go on (true) or ctx
// ends (false). It counts as parked from before it is in the queue until
// the release takes it out, which counts it out at once, so that the
// runner never sees a released activity as at rest.
func (sw *scripted) hold(ctx context.Context) bool {
	rel := make(chan struct{})
	sw.mu.Lock()
	sw.count(&sw.parked, 1)
	sw.held = append(sw.held, rel)
	sw.mu.Unlock()
	select {
	case <-rel:
		return true
	case <-ctx.Done():
		sw.mu.Lock()
		defer sw.mu.Unlock()
		if i := slices.Index(sw.held, rel); i >= 0 {
			sw.held = slices.Delete(sw.held, i, i+1)
			sw.count(&sw.parked, -1)
			return false
		}
		return true // released as ctx ended: the release counted it out
	}
}

// release lets the oldest held activity go on, and reports whether there
// was one.
func (sw *scripted) release() bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if len(sw.held) == 0 {
		return false
	}
	rel := sw.held[0]
	sw.held = sw.held[1:]
	sw.count(&sw.parked, -1)
	close(rel)
	return true
}

// settle waits until the scenario is at rest (see [runner.atRest]) with no
// round of a backlog due (see [gate]), letting each due round go as soon
// as it is at rest, and until done (if not nil) is closed. So every
// snapshot a router sees, and the journal, is the same on every run: the
// next step does not depend on how fast the last one wound down, and a
// waiting activity is offered capacity only when the step that freed it
// has had all its effects. It looks again only when something changed
// (see [runner.wakeups]); while done is open it waits as long as ctx lets
// it, then up to the step's limit.
func (r *runner) settle(ctx context.Context, done <-chan struct{}) error {
	var expire <-chan time.Time
	for {
		wakeups := r.wakeups()
		running := done != nil && !isClosed(done)
		rest, why := r.atRest()
		if rest && r.gate.letDue(r.d, r.rec.joins()) {
			rest, why = false, "a backlog has a round"
		}
		if rest && !running {
			return nil
		}
		if !running && expire == nil { // a request runs until ctx ends it
			t := time.NewTimer(time.Until(r.limit(ctx)))
			defer t.Stop()
			expire = t.C
		}
		if err := awaitChange(ctx, wakeups, expire); err != nil {
			// The step's limit, which bounds the request (errStuck), once
			// it has finished bounds the rest as the timer does.
			if errors.Is(err, errExpired) || (!running && errors.Is(err, errStuck)) {
				return fmt.Errorf("the scenario did not come to rest within its timeout (%s): %s (a hang without a timeout? async to a worker that answers?)", r.timeout(), why)
			}
			return err
		}
	}
}

// wakeups returns what tells a waiter that the scenario may have changed
// since it called wakeups; it calls it before it looks, so that no change
// after the look goes unheard. They are the runner's changed signal, told of
// every operation recorded, every dispatch that returns, every scripted
// handler that starts, parks, is released or returns, and every backlog
// watcher that parks in the gate; and each channel's capacity signal from
// the pool, which fires when a worker in the pool frees a slot. The other
// changes [runner.atRest] looks at come before one of those: a worker's
// slot is freed before its answer is recorded, by the conversation that
// sees its exit before that is recorded, or by the conversation's Close
// before conversation_closed is; an executor takes an activity out of the
// mailbox (its buffer depth) before it calls the handler; and an activity
// leaves a backlog before its conversation records the operation that
// follows.
//
// One change is heard of by none: a worker that was removed from the pool
// freeing the slot of an activity whose conversation ended while it waited
// in the worker's mailbox, before any executor took it (an executor takes
// an activity at once, so the conversation must end in that instant). A
// settle then waits for the step's limit and fails; a poll would see it,
// but no scenario can make it happen on purpose.
func (r *runner) wakeups() []<-chan struct{} {
	out := []<-chan struct{}{r.changed.Wait()}
	for _, ch := range r.s.Config.Channels {
		out = append(out, r.pool.CapacityChanged(ch.Name))
	}
	return out
}

// errExpired is awaitChange's error when expire fires.
var errExpired = errors.New("expired")

// awaitChange blocks until one of wakeups is closed (nil), expire fires
// (errExpired) or ctx ends (its cause). A nil expire never fires.
func awaitChange(ctx context.Context, wakeups []<-chan struct{}, expire <-chan time.Time) error {
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(expire)},
	}
	for _, w := range wakeups {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w)})
	}
	switch i, _, _ := reflect.Select(cases); i {
	case 0:
		return context.Cause(ctx)
	case 1:
		return errExpired
	}
	return nil
}

// atRest reports whether nothing in the scenario moves until a timer fires
// or something acts on it, and if not, why: every open conversation is
// with a worker that hangs or holds its activity, or waits in its
// channel's backlog, whose round of offers (if any) is over; every
// worker's slots are those activities, each taken by an executor; no
// handler runs but those.
func (r *runner) atRest() (bool, string) {
	last := r.rec.open()
	sent := map[WorkerRef]int{}
	waiting := map[engine.ChannelName]int{}
	for conv, op := range last {
		switch op.Kind {
		case engine.OpMessageSent:
			sent[WorkerRef{op.Channel, op.WorkerID}]++
		case engine.OpActivityWaiting:
			waiting[op.Channel]++
		default:
			return false, fmt.Sprintf("conversation %s is at %s", conv, op.Kind)
		}
	}
	type load struct{ inFlight, buffered, running, parked int }
	loads := map[WorkerRef]*load{}
	for _, sw := range r.all {
		ref := WorkerRef{sw.spec.Channel, sw.spec.ID}
		l := loads[ref]
		if l == nil {
			l = &load{}
			loads[ref] = l
		}
		st := sw.w.Load().State()
		l.inFlight += st.InFlight
		l.buffered += st.BufferDepth
		l.running += int(sw.running.Load())
		l.parked += int(sw.parked.Load())
	}
	for ref, l := range loads {
		if l.buffered != 0 || l.inFlight != l.parked || l.running != l.parked || sent[ref] != l.parked {
			return false, fmt.Sprintf("worker %s holds %d activities (%d taken, %d running), want the %d sent to it, each held or hanging",
				ref.ID, l.inFlight, l.inFlight-l.buffered, l.running, sent[ref])
		}
	}
	for _, ch := range r.s.Config.Channels {
		if n := r.d.Waiting(ch.Name); n != waiting[ch.Name] || (n > 0 && !r.gate.idle(ch.Name)) {
			return false, fmt.Sprintf("the backlog of %s is busy", ch.Name.Short())
		}
	}
	return true, ""
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// gate stands between the pool and the dispatcher, so that a backlog
// offers its waiting activities a turn only when the runner lets it: when
// the scenario is at rest, and an activity joined, or the pool signalled a
// capacity change, since the backlog's last round. Each round it lets go
// offers every waiting activity a turn, oldest first, as after a capacity
// change; the journal is then the same on every run.
//
// A backlog's watcher asks for the capacity signal before each round,
// runs the round, then waits for the signal or for an activity to join (a
// kick). The gate keeps it in its ask until the runner lets a round go,
// and answers with a signal of its own, new and already closed: the
// watcher is back in its ask as soon as the round is over, so the runner
// knows it is, and a new signal tells the backlog that capacity changed,
// so the round offers every waiting activity a turn, oldest first.
type gate struct {
	*local.Pool                   // the snapshots and the membership; the signal is the gate's
	changed     *broadcast.Signal // told when a watcher parks

	mu    sync.Mutex
	cond  sync.Cond
	open  bool // the end: the pool's signal, no gate
	chans map[engine.ChannelName]*gated
}

// gated is the gate's state for one channel's backlog.
type gated struct {
	parked  int             // watchers waiting for a round
	permits int             // rounds let go, not yet begun
	since   <-chan struct{} // the pool's signal, asked for as the last round was let go
	joins   int             // the channel's activity_waiting operations then
}

func newGate(pool *local.Pool, changed *broadcast.Signal) *gate {
	g := &gate{Pool: pool, changed: changed, chans: map[engine.ChannelName]*gated{}}
	g.cond.L = &g.mu
	return g
}

// of returns ch's state; g.mu is held.
func (g *gate) of(ch engine.ChannelName) *gated {
	st := g.chans[ch]
	if st == nil {
		st = &gated{}
		g.chans[ch] = st
	}
	return st
}

// CapacityChanged implements [engine.CapacitySignal]: it returns when the
// runner lets the channel's backlog have a round.
func (g *gate) CapacityChanged(ch engine.ChannelName) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.of(ch)
	st.parked++
	g.changed.Notify() // the runner may see the backlog idle now
	for st.permits == 0 && !g.open {
		g.cond.Wait()
	}
	st.parked--
	if g.open {
		return g.Pool.CapacityChanged(ch)
	}
	st.permits--
	given := make(chan struct{}) // a new one: the backlog counts a change
	close(given)
	return given
}

// idle reports whether the channel's backlog waits for the runner.
func (g *gate) idle(ch engine.ChannelName) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.of(ch)
	return st.parked > 0 && st.permits == 0
}

// letDue lets a round go for each channel whose backlog has activities and
// a reason to look again, and reports whether it let any. joins is how
// many activity_waiting operations each channel has recorded so far.
func (g *gate) letDue(d *engine.Dispatcher, joins map[engine.ChannelName]int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	let := false
	for ch, n := range joins {
		st := g.of(ch)
		if d.Waiting(ch) == 0 || st.parked == 0 || st.permits > 0 {
			continue
		}
		if n == st.joins && st.since != nil && !isClosed(st.since) {
			continue
		}
		st.joins = n
		st.since = g.Pool.CapacityChanged(ch) // before the round: a change during it calls for another
		st.permits++
		let = true
	}
	if let {
		g.cond.Broadcast()
	}
	return let
}

// openUp lets every backlog follow the pool's signal, as at the end.
func (g *gate) openUp() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = true
	g.cond.Broadcast()
}

// replay re-dispatches every request so far through a dispatcher that has
// only the recorded operations: no pool, router, conversation or recording
// may be touched, and each outcome must equal the live one.
func (r *runner) replay(ctx context.Context) error {
	// Through the journal's own format and reader, as a replay from a file.
	data, err := Journal(r.rec.ops())
	if err != nil {
		return err
	}
	ops, _, err := journal.ReadAll(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("read back the journal: %w", err)
	}
	rp := journal.NewReplay(ops, nil)
	var touched touchCounter
	d, err := engine.NewDispatcher(engine.Options{Pool: &touched, Router: &touched, Conversations: &touched,
		Recorder: replayOnly{rp, &touched}})
	if err != nil {
		return err
	}
	for i, o := range r.done {
		res, err := d.Dispatch(ctx, o.req.Channel.Namespace(), o.req.Request)
		if !reflect.DeepEqual(res, o.res) || errText(err) != errText(o.err) {
			return fmt.Errorf("request %d (workflow %s): replayed %+v, %v; live it was %+v, %v",
				i+1, o.req.Request.WorkflowID, res, err, o.res, o.err)
		}
	}
	if n := touched.n.Load(); n > 0 {
		return fmt.Errorf("%d live operations during the replay; want none", n)
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// touchCounter is a pool, router, conversation factory and recorder that
// counts every use; a replay must use none.
type touchCounter struct{ n atomic.Int64 }

func (t *touchCounter) Workers(context.Context, engine.ChannelName, engine.ActivityRequest) ([]engine.Worker, error) {
	t.n.Add(1)
	return nil, errors.New("replay touched the worker pool")
}

func (t *touchCounter) Select(context.Context, engine.Selection) (engine.Decision, error) {
	t.n.Add(1)
	return engine.Decision{}, errors.New("replay touched the router")
}

func (t *touchCounter) Open(context.Context, string, engine.ChannelName, string) (engine.Conversation, error) {
	t.n.Add(1)
	return nil, errors.New("replay opened a conversation")
}

// replayOnly answers from the recorded operations and counts any recording.
type replayOnly struct {
	rp      *journal.Replay
	touched *touchCounter
}

func (r replayOnly) ReplayOutcome(ctx context.Context, ch engine.ChannelName, req engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return r.rp.ReplayOutcome(ctx, ch, req)
}

func (r replayOnly) Record(context.Context, engine.Operation) error {
	r.touched.n.Add(1)
	return errors.New("replay recorded an operation")
}

// collector keeps every operation, numbering them, and what a wait for
// the scenario to be at rest asks of them; it tells changed of each.
type collector struct {
	changed *broadcast.Signal

	mu    sync.Mutex
	all   []engine.Operation
	last  map[string]engine.Operation // each open conversation's last operation
	waits map[engine.ChannelName]int  // activity_waiting operations per channel
}

func (c *collector) ReplayOutcome(context.Context, engine.ChannelName, engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return engine.RecordedOutcome{}, false, nil
}

func (c *collector) Record(_ context.Context, op engine.Operation) error {
	c.mu.Lock()
	op.Seq = uint64(len(c.all) + 1)
	c.all = append(c.all, op)
	if c.last == nil {
		c.last, c.waits = map[string]engine.Operation{}, map[engine.ChannelName]int{}
	}
	if op.Kind == engine.OpConversationClosed {
		delete(c.last, op.ConversationID)
	} else {
		c.last[op.ConversationID] = op
	}
	if op.Kind == engine.OpActivityWaiting {
		c.waits[op.Channel]++
	}
	c.mu.Unlock()
	if c.changed != nil {
		c.changed.Notify()
	}
	return nil
}

// ops returns every operation so far.
func (c *collector) ops() []engine.Operation { return c.from(0) }

// from returns the operations after the first n.
func (c *collector) from(n int) []engine.Operation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.all[min(n, len(c.all)):])
}

// len returns how many operations there are.
func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.all)
}

// open returns the last operation of each open conversation.
func (c *collector) open() map[string]engine.Operation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.last)
}

// joins returns how many activity_waiting operations each channel has.
func (c *collector) joins() map[engine.ChannelName]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.waits)
}

// normalise makes a journal independent of the directory the scenario was
// run from: the paths of the scenario, its config and its scripts, in
// router sources and messages, are made relative to the scenario's
// directory. It also makes it independent of the scripts' exact text:
// router hashes become v1, v2, … in the order they first appear (in full,
// and in the 12-digit form messages use), so that an edit that changes no
// decision (a comment, a renamed local) leaves the golden as it was, while
// a swap still shows as a new version.
func normalise(ops []engine.Operation, s *Scenario) []engine.Operation {
	// The versions are the scenario's own programs' and those the journal
	// names; only those are numbered, and only where a version is written
	// (its full hash, or the "LANG HASH12" messages name it by), so that
	// other text that looks like hex stays as it is. The forms are rendered
	// from the versions, not read back from the messages.
	known := map[string]string{} // 12-digit form → vN
	key := func(h string) string {
		hex := strings.TrimPrefix(h, "sha256:")
		return hex[:min(12, len(hex))]
	}
	number := func(h string) {
		if h != "" && known[key(h)] == "" {
			known[key(h)] = fmt.Sprintf("v%d", len(known)+1)
		}
	}
	var programs []engine.RouterVersion
	for _, ch := range s.Config.Channels {
		if p := ch.Routing.Program; p != nil {
			programs = append(programs, engine.RouterVersion{Lang: string(p.Lang()), Hash: p.Hash()})
		}
	}
	for _, st := range s.Steps {
		if st.Swap != nil && st.Swap.Program != nil {
			programs = append(programs, engine.RouterVersion{Lang: string(st.Swap.Program.Lang()), Hash: st.Swap.Program.Hash()})
		}
	}
	// written returns where in text a version is written, or -1.
	written := func(text string, v engine.RouterVersion) int {
		i, j := strings.Index(text, v.Hash), strings.Index(text, router.VersionText(v))
		if i < 0 || (j >= 0 && j < i) {
			return j
		}
		return i
	}
	for _, op := range ops { // in the order they first appear
		number(op.Router.Hash)
		var in []engine.RouterVersion
		for _, v := range programs {
			if written(op.Message, v) >= 0 {
				in = append(in, v)
			}
		}
		slices.SortStableFunc(in, func(a, b engine.RouterVersion) int { return written(op.Message, a) - written(op.Message, b) })
		for _, v := range in {
			number(v.Hash)
		}
	}
	for _, v := range programs { // after those that appear, so as not to shift them
		number(v.Hash)
	}
	var names []string // old, new: each version's forms and its number
	seen := map[engine.RouterVersion]bool{}
	add := func(v engine.RouterVersion) {
		n, ok := known[key(v.Hash)]
		if !ok || v.Hash == "" || seen[v] {
			return
		}
		seen[v] = true
		names = append(names, v.Hash, n, router.VersionText(v), v.Lang+" "+n)
	}
	for _, op := range ops {
		add(engine.RouterVersion{Lang: op.Router.Lang, Hash: op.Router.Hash})
	}
	for _, v := range programs {
		add(v)
	}
	rename := strings.NewReplacer(names...).Replace
	for i := range ops {
		ops[i].Waited = 0 // a time, as the times left out
		if h := ops[i].Router.Hash; h != "" {
			ops[i].Router.Hash = known[key(h)]
		}
		ops[i].Message = rename(ops[i].Message)
	}
	dir := absPath(filepath.Dir(s.File))
	paths := []string{s.File, s.Config.File}
	for _, ch := range s.Config.Channels {
		paths = append(paths, ch.Routing.Path)
	}
	for _, st := range s.Steps {
		if st.Swap != nil {
			paths = append(paths, st.Swap.Path)
		}
	}
	// Longest first, so that no path is rewritten inside a longer one.
	slices.SortFunc(paths, func(a, b string) int { return len(b) - len(a) })
	var pairs []string
	for _, p := range slices.Compact(paths) {
		if p == "" {
			continue
		}
		if rel, err := filepath.Rel(dir, absPath(p)); err == nil {
			pairs = append(pairs, p, filepath.ToSlash(rel))
		}
	}
	r := strings.NewReplacer(pairs...)
	for i := range ops {
		ops[i].Router.Source = r.Replace(ops[i].Router.Source)
		ops[i].Message = r.Replace(ops[i].Message)
	}
	return ops
}

// absPath is p made absolute, or p if that fails.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
