package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

// manualCapacity is a CapacitySignal the test fires: capacity "changes"
// exactly when the test says so.
type manualCapacity struct {
	mu    sync.Mutex
	ch    chan struct{}
	asked atomic.Int32 // CapacityChanged calls
}

func newManualCapacity() *manualCapacity { return &manualCapacity{ch: make(chan struct{})} }

func (m *manualCapacity) CapacityChanged(engine.ChannelName) <-chan struct{} {
	m.asked.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ch
}

// fire says capacity changed.
func (m *manualCapacity) fire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	close(m.ch)
	m.ch = make(chan struct{})
}

// backlogRig is a rig whose dispatcher waits in a backlog, on capacity the
// test fires, under policy.
func backlogRig(t *testing.T, policy engine.BacklogPolicy, r engine.Router) (*rig, *manualCapacity) {
	t.Helper()
	rg := newRig(t)
	if r != nil {
		rg.router = &recordingRouter{inner: r}
	}
	capacity := newManualCapacity()
	var err error
	rg.d, err = engine.NewDispatcher(engine.Options{
		Pool: rg.pool, Router: rg.router, Conversations: rg.convs, Recorder: rg.rec,
		IDs: &engine.SequenceIDs{Prefix: "c"}, Capacity: capacity,
		Backlog: func(engine.ChannelName) engine.BacklogPolicy { return policy },
	})
	if err != nil {
		t.Fatal(err)
	}
	return rg, capacity
}

// held is a handler whose activities run until the test releases them, one
// each time, in the order they started.
type held struct {
	started chan string // workflow ids, as they start
	release chan struct{}
}

func newHeld() *held { return &held{started: make(chan string, 100), release: make(chan struct{})} }

func (h *held) handle(ctx context.Context, req engine.ActivityRequest) engine.ActivityResult {
	h.started <- req.WorkflowID
	select {
	case <-h.release:
		return engine.Completed(req.Input)
	case <-ctx.Done():
		return engine.Failed("cancelled")
	}
}

// waiting polls until n activities wait in the rig's channel's backlog; the
// deadline only guards a hang.
func waiting(t *testing.T, r *rig, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r.d.Waiting(r.channel) < n {
		if time.Now().After(deadline) {
			t.Fatalf("never %d waiting: %v", n, kinds(r.rec.all()))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBacklogWaitsForAFreeSlot: with the only worker's one slot taken, an
// activity waits in the backlog, not in the worker's mailbox, and is sent
// when the slot frees; its journal says it waited, and for how long.
func TestBacklogWaitsForAFreeSlot(t *testing.T) {
	r, capacity := backlogRig(t, engine.BacklogPolicy{}, nil)
	h := newHeld()
	w := r.start(t, "w1", h.handle)
	first := make(chan error, 1)
	go func() { _, err := r.dispatch(context.Background(), request("wf-1")); first <- err }()
	<-h.started
	second := make(chan error, 1)
	go func() { _, err := r.dispatch(context.Background(), request("wf-2")); second <- err }()
	waiting(t, r, 1)
	if s := w.State(); s.InFlight != 1 || s.BufferDepth != 0 {
		t.Fatalf("worker state %+v while wf-2 waits: want only wf-1 in flight", s)
	}
	h.release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	capacity.fire()
	if id := <-h.started; id != "wf-2" {
		t.Fatalf("started %s", id)
	}
	h.release <- struct{}{}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	var wf2 []engine.Operation
	for _, op := range r.rec.all() {
		if op.WorkflowID == "wf-2" {
			wf2 = append(wf2, op)
		}
	}
	if got := strings.Join(kinds(wf2), " "); got != "conversation_opened activity_waiting worker_selected message_sent message_received conversation_closed" {
		t.Fatalf("wf-2's journal: %s", got)
	}
	if msg := wf2[1].Message; msg != "no free slot: the 1 candidate is full (w1, 1 of 1)" || wf2[1].Attempt != 1 || wf2[1].State != engine.StateScheduled {
		t.Errorf("activity_waiting = %+v", wf2[1])
	}
	if wf2[2].Waited <= 0 {
		t.Errorf("worker_selected after the wait has waited %s", wf2[2].Waited)
	}
	r.convs.checkClosedOnce(t)
	r.checkIdle(t, w)
}

// TestBacklogIsFIFO: waiting activities are placed oldest first.
func TestBacklogIsFIFO(t *testing.T) {
	r, capacity := backlogRig(t, engine.BacklogPolicy{}, nil)
	h := newHeld()
	w := r.start(t, "w1", h.handle)
	done := make(chan error, 10)
	go func() { _, err := r.dispatch(context.Background(), request("wf-0")); done <- err }()
	<-h.started
	for i := 1; i <= 5; i++ {
		go func() { _, err := r.dispatch(context.Background(), request(fmt.Sprintf("wf-%d", i))); done <- err }()
		waiting(t, r, i) // joined in this order
	}
	for i := 1; i <= 5; i++ {
		h.release <- struct{}{}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		capacity.fire()
		if id := <-h.started; id != fmt.Sprintf("wf-%d", i) {
			t.Fatalf("started %s, want wf-%d: the oldest first", id, i)
		}
	}
	h.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.checkIdle(t, w)
}

// TestBacklogHeldBackBlocksNoOne: an activity its router holds back ("none
// of these now") does not keep those behind it from a free slot.
func TestBacklogHeldBackBlocksNoOne(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	pick := router.NewNative("hold", func(in engine.Selection) string {
		if in.WorkflowID == "wf-held" && hold.Load() {
			return ""
		}
		return router.LeastLoaded(in)
	})
	r, capacity := backlogRig(t, engine.BacklogPolicy{}, pick)
	h := newHeld()
	w := r.start(t, "w1", h.handle)
	done := make(chan error, 3)
	go func() { _, err := r.dispatch(context.Background(), request("wf-0")); done <- err }()
	<-h.started
	go func() { _, err := r.dispatch(context.Background(), request("wf-held")); done <- err }()
	waiting(t, r, 1)
	go func() { _, err := r.dispatch(context.Background(), request("wf-next")); done <- err }()
	waiting(t, r, 2)
	h.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	capacity.fire()
	if id := <-h.started; id != "wf-next" {
		t.Fatalf("started %s, want wf-next past the held-back wf-held", id)
	}
	hold.Store(false)
	h.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	capacity.fire()
	if id := <-h.started; id != "wf-held" {
		t.Fatalf("started %s, want wf-held once its router lets it go", id)
	}
	h.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.checkIdle(t, w)
}

// TestBacklogTimeoutsAndBounds: schedule-to-start ends a wait with its own
// error; a full backlog refuses at once; when_full: fail does not wait.
func TestBacklogTimeoutsAndBounds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy engine.BacklogPolicy
		req    func(engine.ActivityRequest) engine.ActivityRequest
		want   error
		msg    string
		kinds  string
	}{
		{"schedule-to-start", engine.BacklogPolicy{}, func(r engine.ActivityRequest) engine.ActivityRequest {
			r.ScheduleToStart = 20 * time.Millisecond
			return r
		}, engine.ErrScheduleToStartTimeout, "schedule-to-start timeout after 20ms", "conversation_opened activity_waiting conversation_closed"},
		{"schedule-to-start from the channel's policy", engine.BacklogPolicy{ScheduleToStart: 20 * time.Millisecond}, nil,
			engine.ErrScheduleToStartTimeout, "schedule-to-start timeout after 20ms", "conversation_opened activity_waiting conversation_closed"},
		{"schedule-to-close while waiting", engine.BacklogPolicy{}, func(r engine.ActivityRequest) engine.ActivityRequest {
			r.ScheduleToClose = 20 * time.Millisecond
			return r
		}, engine.ErrScheduleToCloseTimeout, "schedule-to-close timeout after 20ms", "conversation_opened activity_waiting conversation_closed"},
		{"backlog full", engine.BacklogPolicy{MaxBacklog: 1}, nil, engine.ErrBacklogFull,
			"backlog full: 1 activities already wait on prod/email, its max_backlog (1); add workers, raise max_backlog, or set when_full: fail to fail at once",
			"conversation_opened conversation_closed"},
		{"when_full: fail", engine.BacklogPolicy{FailWhenFull: true}, nil, engine.ErrNoWorkers,
			"NoWorkersAvailable: no free slot: the 1 candidate is full (w1, 1 of 1)", "conversation_opened conversation_closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := backlogRig(t, tc.policy, nil)
			h := newHeld()
			w := r.start(t, "w1", h.handle)
			ctx, cancel := context.WithCancel(context.Background())
			bg := make(chan error, 2)
			go func() { _, err := r.dispatch(ctx, request("wf-running")); bg <- err }()
			<-h.started
			if tc.name == "backlog full" {
				go func() { _, err := r.dispatch(ctx, request("wf-waiting")); bg <- err }()
				waiting(t, r, 1)
			}
			req := request("wf-x")
			if tc.req != nil {
				req = tc.req(req)
			}
			_, err := r.dispatch(context.Background(), req)
			if !errors.Is(err, tc.want) || !strings.HasSuffix(err.Error(), tc.msg) {
				t.Fatalf("err = %v\nwant %v ending %q", err, tc.want, tc.msg)
			}
			var x []engine.Operation
			for _, op := range r.rec.all() {
				if op.WorkflowID == "wf-x" {
					x = append(x, op)
				}
			}
			if got := strings.Join(kinds(x), " "); got != tc.kinds {
				t.Errorf("wf-x's journal: %s, want %s", got, tc.kinds)
			}
			if closed := x[len(x)-1]; closed.WorkerID != "" || closed.State != engine.StateFailed(true) {
				t.Errorf("close %+v", closed)
			}
			cancel()
			<-bg
			if tc.name == "backlog full" {
				<-bg
			}
			r.convs.checkClosedOnce(t)
			r.checkIdle(t, w)
		})
	}
}

// steppedCapacity is a CapacitySignal that lets the backlog have one round
// at a time: its watcher asks for the signal before each round and is kept
// in the ask until the test steps; step returns once the round is over (the
// watcher asks again).
type steppedCapacity struct {
	mu      sync.Mutex
	cond    sync.Cond
	parked  int
	permits int
	open    bool
	never   chan struct{}
}

func newSteppedCapacity() *steppedCapacity {
	s := &steppedCapacity{never: make(chan struct{})}
	s.cond.L = &s.mu
	return s
}

func (s *steppedCapacity) CapacityChanged(engine.ChannelName) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parked++
	s.cond.Broadcast()
	for s.permits == 0 && !s.open {
		s.cond.Wait()
	}
	s.parked--
	if s.open {
		return s.never
	}
	s.permits--
	changed := make(chan struct{}) // new, and closed: a change
	close(changed)
	return changed
}

// parkedNow waits until the watcher is in its ask.
func (s *steppedCapacity) parkedNow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.parked == 0 {
		s.cond.Wait()
	}
}

// step lets one round go and returns when it is over.
func (s *steppedCapacity) step() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.permits++
	s.cond.Broadcast()
	for s.permits > 0 || s.parked == 0 {
		s.cond.Wait()
	}
}

// release lets the watcher go for good, to end when the backlog empties.
func (s *steppedCapacity) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = true
	s.cond.Broadcast()
}

// TestBacklogBoundsScriptCallsPerChange: with many activities held back by
// their router, a capacity change asks a bounded number of them again, the
// one asked longest ago first, not one per waiting activity; each is asked
// once in its life outside that bound, at its first turn with a free slot;
// and one behind them that its router does not hold back is placed at that
// same change (held-back activities block no one).
func TestBacklogBoundsScriptCallsPerChange(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	pick := router.NewNative("hold-all", func(in engine.Selection) string {
		mu.Lock()
		asked = append(asked, in.WorkflowID)
		mu.Unlock()
		if strings.HasPrefix(in.WorkflowID, "wf-held") {
			return ""
		}
		return router.LeastLoaded(in)
	})
	calls := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(asked)
		asked = asked[:0]
		return out
	}
	capacity := newSteppedCapacity()
	r := newRig(t)
	r.router = &recordingRouter{inner: pick}
	var err error
	r.d, err = engine.NewDispatcher(engine.Options{Pool: r.pool, Router: r.router, Conversations: r.convs, Recorder: r.rec,
		IDs: &engine.SequenceIDs{Prefix: "c"}, Capacity: capacity})
	if err != nil {
		t.Fatal(err)
	}
	h := newHeld()
	w := r.start(t, "w1", h.handle)
	done := make(chan error, 2)
	go func() { _, err := r.dispatch(context.Background(), request("wf-0")); done <- err }()
	<-h.started
	calls() // wf-0's
	const deep = 200
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range deep {
		wg.Add(1)
		go func() { defer wg.Done(); r.dispatch(ctx, request(fmt.Sprintf("wf-held-%03d", i))) }()
		waiting(t, r, i+1) // in this order
	}
	go func() { _, err := r.dispatch(context.Background(), request("wf-next")); done <- err }()
	waiting(t, r, deep+1)
	capacity.parkedNow()
	if got := calls(); len(got) != 0 {
		t.Fatalf("router asked while w1 was full: %v", got)
	}
	h.release <- struct{}{} // w1's slot frees
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	capacity.step() // each held-back one is asked once, then wf-next is placed
	if got := <-h.started; got != "wf-next" {
		t.Fatalf("started %s, want wf-next", got)
	}
	if got := calls(); len(got) != deep+1 || got[deep] != "wf-next" {
		t.Fatalf("first change: %d router calls (last %q), want %d then wf-next", len(got), got[len(got)-1], deep)
	}
	h.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for change, want := range []string{"wf-held-000", "wf-held-016", "wf-held-032"} {
		capacity.step()
		got := calls()
		if len(got) != 16 || got[0] != want {
			t.Fatalf("change %d: %d router calls from %v, want 16 from %s", change+2, len(got), got[:min(len(got), 1)], want)
		}
	}
	// One that joins now goes before the held-back ones still to be asked.
	go func() { _, err := r.dispatch(context.Background(), request("wf-late")); done <- err }()
	waiting(t, r, deep+1)
	capacity.step()
	if n := r.d.Waiting(r.channel); n != deep {
		t.Fatalf("%d waiting after the change, want %d: wf-late placed", n, deep)
	}
	if got := <-h.started; got != "wf-late" {
		t.Fatalf("started %s, want wf-late", got)
	}
	h.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	capacity.release()
	cancel()
	wg.Wait()
	r.checkIdle(t, w)
}

// TestBacklogAfterExits: an activity whose worker exited waits for another
// of the channel's workers, away for now, to come back; one that every
// worker of the channel has failed ends with NoWorkersAvailable at once,
// rather than wait for ever (a poison activity).
func TestBacklogAfterExits(t *testing.T) {
	r := newRig(t)
	var err error
	r.d, err = engine.NewDispatcher(engine.Options{Pool: r.pool, Router: r.router, Conversations: r.convs, Recorder: r.rec,
		IDs: &engine.SequenceIDs{Prefix: "c"}, Capacity: r.pool})
	if err != nil {
		t.Fatal(err)
	}
	var w1 *local.Worker
	w1 = r.start(t, "w1", func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		w1.Stop("crashed")
		return engine.ActivityResult{}
	})
	w2 := r.start(t, "w2", echo)
	w2.Stop("deploy") // away, to come back
	if err := w2.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := r.dispatch(context.Background(), request("wf-1")); done <- err }()
	waiting(t, r, 1) // w1 exited on it, w2 is away: it waits
	if _, err := r.pool.Start(r.channel, local.WorkerConfig{ID: "w2", Handler: echo}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("once w2 is back: %v", err)
	}

	// Every worker of the channel fails it: no wait. (An exited worker
	// stays a member, which may restart, until it is removed.)
	var w3 *local.Worker
	r.pool.Remove(r.channel, "w1")
	r.pool.Remove(r.channel, "w2")
	w3 = r.start(t, "w3", func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		w3.Stop("crashed")
		return engine.ActivityResult{}
	})
	_, err = r.dispatch(context.Background(), request("wf-2"))
	if !errors.Is(err, engine.ErrNoWorkers) {
		t.Fatalf("every worker failed it: %v, want NoWorkersAvailable at once", err)
	}
}

// TestBacklogReroutedBlockNoOne: many activities re-routed after their
// worker crashed, waiting for the one worker they may still use (full), do
// not keep a newer activity from the crashed worker once it is back idle;
// and when a worker leaves the channel for good, an activity every
// remaining member has failed ends with NoWorkersAvailable at once.
func TestBacklogReroutedBlockNoOne(t *testing.T) {
	r := newRig(t)
	// The most free slots (least-loaded counts in-flight activities alone,
	// and would choose w2, 1 of 1, over w1, 2 of 48).
	r.router = &recordingRouter{inner: router.NewNative("most-free", func(in engine.Selection) string {
		best, free := "", 0
		for _, w := range in.Candidates {
			if f := w.State.MaxInFlight - w.State.InFlight; f > free {
				best, free = w.ID(), f
			}
		}
		return best
	})}
	var err error
	r.d, err = engine.NewDispatcher(engine.Options{Pool: r.pool, Router: r.router, Conversations: r.convs, Recorder: r.rec,
		IDs: &engine.SequenceIDs{Prefix: "c"}, Capacity: r.pool})
	if err != nil {
		t.Fatal(err)
	}
	busy := make(chan string, 1)
	r.start(t, "w2", hang(busy, "w2"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.dispatch(ctx, request("wf-0")) }()
	<-busy
	const n = 3 * 16
	var started atomic.Int32
	var w1 *local.Worker
	ready := make(chan struct{})
	w1, err = r.pool.Start(r.channel, local.WorkerConfig{ID: "w1", MaxInFlight: n, Handler: func(hctx context.Context, _ engine.ActivityRequest) engine.ActivityResult {
		<-ready
		if started.Add(1) == n {
			w1.Stop("crashed")
		}
		<-hctx.Done()
		return engine.ActivityResult{}
	}})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	crashed := make(chan error, n)
	for i := range n {
		go func() {
			req := request(fmt.Sprintf("wf-crashed-%d", i))
			req.ScheduleToStart = 10 * time.Second // only a guard against a hang
			_, err := r.dispatch(ctx, req)
			crashed <- err
		}()
	}
	waiting(t, r, n) // each excludes w1 and waits for w2
	next := make(chan error, 1)
	go func() {
		req := request("wf-next")
		req.ScheduleToStart = 10 * time.Second // only a guard against a hang
		_, err := r.dispatch(context.Background(), req)
		next <- err
	}()
	waiting(t, r, n+1)
	if _, err := r.pool.Start(r.channel, local.WorkerConfig{ID: "w1", Handler: echo}); err != nil {
		t.Fatal(err)
	}
	if err := <-next; err != nil {
		t.Fatalf("wf-next never went to the idle w1: %v", err)
	}

	// w2 leaves the channel: every activity still waiting has failed on
	// w1, the only member left.
	r.pool.Remove(r.channel, "w2")
	for range n {
		if err := <-crashed; !errors.Is(err, engine.ErrNoWorkers) {
			t.Fatalf("after w2 left: %v, want NoWorkersAvailable at once", err)
		}
	}
	cancel()
	wg.Wait()
}

// snapshotsOnly is a pool that gives snapshots and nothing else (no
// [engine.Membership]), so the dispatcher judges who belongs to a channel
// by the workers an activity has seen. It says on shown when a snapshot
// includes the worker named by watch.
type snapshotsOnly struct {
	pool  *local.Pool
	watch atomic.Pointer[string]
	shown chan struct{}
}

func (s *snapshotsOnly) Workers(ctx context.Context, ch engine.ChannelName, req engine.ActivityRequest) ([]engine.Worker, error) {
	ws, err := s.pool.Workers(ctx, ch, req)
	if id := s.watch.Load(); id != nil {
		for _, w := range ws {
			if w.ID() == *id {
				s.watch.Store(nil)
				close(s.shown)
			}
		}
	}
	return ws, err
}

// TestBacklogAfterExitsWithoutMembership: with a pool that does not say
// who belongs to a channel, a worker the activity saw in its first
// snapshot still counts: w1 fails the activity while w2 is away, and w1
// is back before w2; the activity waits for w2 rather than end because
// the only worker it sees now is one that failed it.
func TestBacklogAfterExitsWithoutMembership(t *testing.T) {
	r := newRig(t)
	pool := &snapshotsOnly{pool: r.pool, shown: make(chan struct{})}
	var err error
	r.d, err = engine.NewDispatcher(engine.Options{Pool: pool, Router: r.router, Conversations: r.convs, Recorder: r.rec,
		IDs: &engine.SequenceIDs{Prefix: "c"}, Capacity: r.pool})
	if err != nil {
		t.Fatal(err)
	}
	var w1, w2 *local.Worker
	w1 = r.start(t, "w1", func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		w2.Stop("deploy")
		if err := w2.Wait(context.Background()); err != nil {
			t.Error(err)
		}
		w1.Stop("crashed")
		return engine.ActivityResult{}
	})
	w2 = r.start(t, "w2", echo)
	done := make(chan error, 1)
	go func() { _, err := r.dispatch(context.Background(), request("wf-1")); done <- err }()
	if err := w1.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := "w1"
	pool.watch.Store(&id)
	if _, err := r.pool.Start(r.channel, local.WorkerConfig{ID: "w1", Handler: echo}); err != nil {
		t.Fatal(err)
	}
	<-pool.shown // the activity has looked at the pool with w1 back
	select {
	case err := <-done:
		t.Fatalf("ended before w2 came back: %v", err)
	default:
	}
	if _, err := r.pool.Start(r.channel, local.WorkerConfig{ID: "w2", Handler: echo}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("once w2 is back: %v", err)
	}
}

// TestBacklogLosesNoWakeup: five activities for one one-slot worker that
// answers at once, three thousand times over: every one completes. A
// capacity change that lands while the backlog looks at its queue for
// another reason (an activity joining) must not be lost (it was, once, in
// about one run in three hundred under -race).
func TestBacklogLosesNoWakeup(t *testing.T) {
	for round := range 3000 {
		r := newRig(t)
		var err error
		r.d, err = engine.NewDispatcher(engine.Options{Pool: r.pool, Router: r.router, Conversations: r.convs,
			IDs: &engine.SequenceIDs{Prefix: "c"}, Capacity: r.pool})
		if err != nil {
			t.Fatal(err)
		}
		r.start(t, "w1", failWith("no"))
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Add(1)
			go func() { defer wg.Done(); r.dispatch(context.Background(), request(fmt.Sprintf("wf-%d", i))) }()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second): // a hang guard, not a timing
			t.Fatalf("round %d: %d activities still wait", round, r.d.Waiting(r.channel))
		}
	}
}
