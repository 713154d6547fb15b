package node

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// Counters are the running totals of a node, cheap to read while it runs.
type Counters struct {
	Dispatched int64 // conversations opened
	Completed  int64 // closed with a completed result
	Failed     int64 // closed otherwise: failed activity, no worker, timeout, error
	Rerouted   int64 // selections after a worker exited
	Backlog    int64 // activities waiting in their channel's backlog now, all channels
}

// Stats are a node's figures: what each channel and worker did and which
// router versions decided.
type Stats struct {
	Counters Counters
	Channels []ChannelStats // by channel
	Workers  []WorkerStats  // by channel, then worker
	Routers  []RouterStats  // by channel, source, hash
	Reasons  []ReasonStats  // why conversations did not complete, most frequent first
	Latency  LatencySummary // of every conversation
	Started  time.Time      // when the node started
	Elapsed  time.Duration  // since Started
}

// LatencySummary summarises conversation latencies (opened to closed).
type LatencySummary struct {
	P50, P99 time.Duration
}

// ChannelStats are one channel's figures.
type ChannelStats struct {
	Channel    engine.ChannelName
	Activities int // conversations opened
	Completed  int
	Failed     int // the worker answered Failed
	Other      int // closed without a result: no worker, timeout, routing error
	Reroutes   int // selections after a worker exited
	Exits      int // exits of its workers
	Latency    LatencySummary

	// The backlog: an activity waits in it from its activity_waiting to
	// the worker_selected or conversation_closed that ends the wait.
	Backlog     int            // activities waiting in it now
	BacklogPeak int            // the most that waited in it at once
	Waited      int            // waits that ended with a worker selected
	Wait        LatencySummary // of those waits (worker_selected's waited)
	// ScheduleToStartTimeouts counts the activities that waited longer
	// than their schedule-to-start timeout: conversations closed with
	// engine.ErrScheduleToStartTimeout's message.
	ScheduleToStartTimeouts int
}

// WorkerStats are one worker's figures.
type WorkerStats struct {
	Channel   engine.ChannelName
	Worker    string
	Selected  int // times a router chose it
	Completed int
	Failed    int
	Lost      int // activities it had when it exited
	Rerouted  int // of those, how many went on to another worker
	TimedOut  int
	Exits     int // times its process exited
	Restarts  int
	Latency   LatencySummary // of the conversations it closed
}

// RouterStats count the decisions of one router version on one channel.
type RouterStats struct {
	Channel   engine.ChannelName
	Version   engine.RouterVersion
	Decisions int
	// Errors counts the conversations this version's call ended with a
	// routing error: a version that only failed is listed too.
	Errors int
}

// ReasonStats count conversations that closed for one reason other than
// completion.
type ReasonStats struct {
	Reason string
	Count  int
}

// stats is the node's recorder: it keeps the figures and passes every
// operation on to the configured recorder.
type stats struct {
	next  engine.Recorder
	since time.Time

	dispatched, completed, failed, rerouted, backlog atomic.Int64

	mu       sync.Mutex
	open     map[string]openConv
	channels map[engine.ChannelName]*channelAcc
	workers  map[workerKey]*workerAcc
	routers  map[routerKey]*RouterStats
	reasons  map[string]int
	all      sample
}

type openConv struct {
	channel engine.ChannelName
	at      time.Time
	worker  string // the worker selected last
	waiting bool   // in the channel's backlog now
}

type channelAcc struct {
	ChannelStats
	lat  sample
	wait sample
}

type workerAcc struct {
	WorkerStats
	lat sample
}

// sampleSize bounds the latencies kept per series, so that a run streaming
// requests for hours keeps a fixed amount of memory.
const sampleSize = 1 << 15

// sample is a uniform sample of a stream of latencies (reservoir sampling
// with a fixed seed, so it is repeatable).
type sample struct {
	seen int
	ds   []time.Duration
	rng  *rand.Rand
}

func (s *sample) add(d time.Duration) {
	s.seen++
	if len(s.ds) < sampleSize {
		s.ds = append(s.ds, d)
		return
	}
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(1, 2))
	}
	if j := s.rng.IntN(s.seen); j < sampleSize {
		s.ds[j] = d
	}
}

type routerKey struct {
	channel engine.ChannelName
	version engine.RouterVersion
}

func newStats(next engine.Recorder) *stats {
	return &stats{next: next, since: time.Now(), open: map[string]openConv{},
		channels: map[engine.ChannelName]*channelAcc{}, workers: map[workerKey]*workerAcc{},
		routers: map[routerKey]*RouterStats{}, reasons: map[string]int{}}
}

// ReplayOutcome implements engine.Recorder by asking the next recorder.
func (s *stats) ReplayOutcome(ctx context.Context, ch engine.ChannelName, req engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	if s.next == nil {
		return engine.RecordedOutcome{}, false, nil
	}
	return s.next.ReplayOutcome(ctx, ch, req)
}

// Record implements engine.Recorder: it counts op and passes it on. A
// conversation_opened the next recorder refuses (a journal that cannot be
// written) opens nothing: the dispatch fails there and no close follows,
// so the failure is counted as its close.
func (s *stats) Record(ctx context.Context, op engine.Operation) error {
	s.observe(op)
	if s.next == nil {
		return nil
	}
	err := s.next.Record(ctx, op)
	if err != nil && op.Kind == engine.OpConversationOpened {
		s.observe(engine.Operation{Kind: engine.OpConversationClosed, WorkflowID: op.WorkflowID,
			ConversationID: op.ConversationID, Channel: op.Channel, Message: "not recorded: " + err.Error()})
	}
	return err
}

func (s *stats) observe(op engine.Operation) {
	now := time.Now()
	switch op.Kind {
	case engine.OpConversationOpened:
		s.dispatched.Add(1)
	case engine.OpWorkerSelected:
		if op.Attempt > 1 {
			s.rerouted.Add(1)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch op.Kind {
	case engine.OpConversationOpened:
		s.open[op.ConversationID] = openConv{channel: op.Channel, at: now}
		s.channel(op.Channel).Activities++
	case engine.OpActivityWaiting:
		// A wait is counted once, however often it is recorded.
		if o, ok := s.open[op.ConversationID]; ok && !o.waiting {
			o.waiting = true
			s.open[op.ConversationID] = o
			c := s.channel(o.channel)
			c.Backlog++
			c.BacklogPeak = max(c.BacklogPeak, c.Backlog)
			s.backlog.Add(1)
		}
	case engine.OpWorkerSelected:
		s.worker(op.Channel, op.WorkerID).Selected++
		if o, ok := s.open[op.ConversationID]; ok {
			if op.Attempt > 1 && o.worker != "" {
				s.channel(op.Channel).Reroutes++
				s.worker(op.Channel, o.worker).Rerouted++
			}
			if o.waiting || op.Waited > 0 {
				c := s.channel(o.channel)
				c.Waited++
				c.wait.add(op.Waited)
			}
			o = s.endWait(o)
			o.worker = op.WorkerID
			s.open[op.ConversationID] = o
		}
		s.router(op.Channel, op.Router).Decisions++
	case engine.OpWorkerExited:
		s.worker(op.Channel, op.WorkerID).Lost++
	case engine.OpWorkerTimedOut:
		s.worker(op.Channel, op.WorkerID).TimedOut++
	case engine.OpConversationClosed:
		o, ok := s.open[op.ConversationID]
		if !ok {
			// Closed already: the engine records a close again, without
			// its result, when the journal refused the first.
			return
		}
		delete(s.open, op.ConversationID)
		s.endWait(o)
		if op.Router != (engine.RouterVersion{}) { // a routing error ended it
			s.router(op.Channel, op.Router).Errors++
		}
		if op.Result.Status == engine.StatusCompleted {
			s.completed.Add(1)
		} else {
			s.failed.Add(1)
		}
		c := s.channel(op.Channel)
		var w *workerAcc
		if op.WorkerID != "" {
			w = s.worker(op.Channel, op.WorkerID)
		}
		switch op.Result.Status {
		case engine.StatusCompleted:
			c.Completed++
			if w != nil {
				w.Completed++
			}
		case engine.StatusFailed:
			c.Failed++
			if w != nil {
				w.Failed++
			}
			s.reasons[oneLine("activity failed: "+op.Result.Error)]++
		default:
			c.Other++
			s.reasons[oneLine(op.Message)]++
			if strings.Contains(op.Message, engine.ErrScheduleToStartTimeout.Error()) {
				c.ScheduleToStartTimeouts++
			}
		}
		d := now.Sub(o.at)
		c.lat.add(d)
		s.all.add(d)
		if w != nil {
			w.lat.add(d)
		}
	}
}

// endWait takes o out of its channel's backlog, if it waits there, and
// returns it so. s.mu is held.
func (s *stats) endWait(o openConv) openConv {
	if o.waiting {
		o.waiting = false
		s.channel(o.channel).Backlog--
		s.backlog.Add(-1)
	}
	return o
}

// router returns the figures of version v on channel ch, made on first use.
func (s *stats) router(ch engine.ChannelName, v engine.RouterVersion) *RouterStats {
	k := routerKey{ch, v}
	r, ok := s.routers[k]
	if !ok {
		r = &RouterStats{Channel: ch, Version: v}
		s.routers[k] = r
	}
	return r
}

func (s *stats) channel(ch engine.ChannelName) *channelAcc {
	c, ok := s.channels[ch]
	if !ok {
		c = &channelAcc{ChannelStats: ChannelStats{Channel: ch}}
		s.channels[ch] = c
	}
	return c
}

func (s *stats) worker(ch engine.ChannelName, id string) *workerAcc {
	k := workerKey{ch, id}
	w, ok := s.workers[k]
	if !ok {
		w = &workerAcc{WorkerStats: WorkerStats{Channel: ch, Worker: id}}
		s.workers[k] = w
	}
	return w
}

// started makes a configured worker appear in the figures even before it
// gets anything.
func (s *stats) started(ch engine.ChannelName, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.worker(ch, id)
}

func (s *stats) exited(ch engine.ChannelName, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.worker(ch, id).Exits++
}

func (s *stats) restarted(ch engine.ChannelName, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.worker(ch, id).Restarts++
}

func (s *stats) counters() Counters {
	return Counters{Dispatched: s.dispatched.Load(), Completed: s.completed.Load(),
		Failed: s.failed.Load(), Rerouted: s.rerouted.Load(), Backlog: s.backlog.Load()}
}

// Counters returns the node's running totals.
func (n *Node) Counters() Counters { return n.stats.counters() }

// Stats returns the node's figures so far.
func (n *Node) Stats() Stats { return n.stats.snapshot() }

// snapshot returns the figures so far.
func (s *stats) snapshot() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Counters: s.counters(), Started: s.since, Elapsed: time.Since(s.since), Latency: summarise(s.all.ds)}
	exits := map[engine.ChannelName]int{}
	for _, w := range s.workers {
		exits[w.Channel] += w.Exits
	}
	for _, c := range s.channels {
		cs := c.ChannelStats
		cs.Latency = summarise(c.lat.ds)
		cs.Wait = summarise(c.wait.ds)
		cs.Exits = exits[cs.Channel]
		out.Channels = append(out.Channels, cs)
	}
	slices.SortFunc(out.Channels, func(a, b ChannelStats) int { return cmp.Compare(a.Channel.String(), b.Channel.String()) })
	for _, w := range s.workers {
		ws := w.WorkerStats
		ws.Latency = summarise(w.lat.ds)
		out.Workers = append(out.Workers, ws)
	}
	slices.SortFunc(out.Workers, func(a, b WorkerStats) int {
		return cmp.Or(cmp.Compare(a.Channel.String(), b.Channel.String()), cmp.Compare(a.Worker, b.Worker))
	})
	for _, r := range s.routers {
		out.Routers = append(out.Routers, *r)
	}
	slices.SortFunc(out.Routers, func(a, b RouterStats) int {
		return cmp.Or(cmp.Compare(a.Channel.String(), b.Channel.String()), cmp.Compare(a.Version.Source, b.Version.Source),
			cmp.Compare(a.Version.Hash, b.Version.Hash))
	})
	for reason, n := range s.reasons {
		out.Reasons = append(out.Reasons, ReasonStats{Reason: reason, Count: n})
	}
	slices.SortFunc(out.Reasons, func(a, b ReasonStats) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}

// summarise returns the median and 99th percentile of ds (nearest rank).
func summarise(ds []time.Duration) LatencySummary {
	if len(ds) == 0 {
		return LatencySummary{}
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(sorted))+0.5) - 1
		return sorted[min(max(i, 0), len(sorted)-1)]
	}
	return LatencySummary{P50: at(0.50), P99: at(0.99)}
}

// oneLine keeps a reason on one line of the summary: the lines of a joined
// error are joined with "; ".
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }
