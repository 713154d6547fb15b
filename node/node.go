// Package node runs the channels of a config in process: each channel's
// router in an atomic slot, its local workers with the simulated behaviour
// the config gives them, and a dispatcher over both. A node follows config
// reloads (pass [Node.Apply] to a config.Watcher) without disturbing a
// dispatch in flight, and keeps the figures `dispatch run` reports.
//
// It is the public API for embedding dispatch in a Go program: `dispatch
// run` and `dispatch serve` are built on it, and a program with workers
// of its own passes their transport as [Options.Remote] (any
// [engine.WorkerPool] and [engine.ConversationFactory] with the capacity
// signal and membership, as remote.Transport is) to get routing scripts,
// the backlog and hot reload over them.
package node

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

// Options configure a Node.
type Options struct {
	// Recorder receives every operation after the node's own figures have
	// seen it (a journal, say), and answers replays. Nil records nothing.
	Recorder engine.Recorder
	// Seed makes the simulated behaviour repeatable: each worker draws from
	// its own generator seeded from Seed and its channel and id.
	Seed uint64
	// IDs hands out conversation ids; nil means engine.RandomIDs.
	IDs engine.IDSource
	// Logger gets a line for each channel and worker change; nil means
	// slog.Default().
	Logger *slog.Logger
	// RecentDecisions is how many of each channel's last decisions the node
	// keeps for its reload gate ([Node.Gate]);
	// router.DefaultRecentDecisions is what `dispatch run --watch` keeps.
	// With 0 the gate checks new versions on synthetic decisions only.
	RecentDecisions int
	// Remote, if set, is a transport whose workers register on their own
	// (over NATS): they serve the node's channels beside the simulated
	// workers. The node does not close it.
	Remote Remote
	// Programs starts the programs of the workers with exec (they join
	// through Remote) and stops them when they leave the config. Nil: such
	// workers are not started, and a line says so.
	Programs Programs
	// WrapRouter, if set, wraps the router the dispatcher asks (the
	// node's table of channel routers), to observe every decision: a
	// metrics collector times them there. It must return what the router
	// it wraps returns.
	WrapRouter func(engine.Router) engine.Router
}

// Programs starts the real program of a configured worker (config.Worker's
// Exec), which registers through the node's [Remote] like any remote
// worker, and restarts it as the worker says. Stop ends it: it drains, and
// it is not restarted.
type Programs interface {
	Start(ctx context.Context, channel engine.ChannelName, w config.Worker) (stop func(), err error)
}

// Node is a running set of channels. Its methods are safe for concurrent
// use.
type Node struct {
	table    *router.Table
	pool     *local.Pool
	fleet    *fleet // the pool and the remote workers, as the engine sees them
	programs Programs
	disp     *engine.Dispatcher
	stats    *stats
	seed     uint64
	log      *slog.Logger

	ctx    context.Context // ends on Close; restarts wait on it
	cancel context.CancelFunc
	wg     sync.WaitGroup // the goroutines that watch workers for restarts

	mu      sync.Mutex // serialises Apply, restarts and Close
	cfg     *config.Config
	workers map[workerKey]*run
	progs   map[workerKey]func() // the exec workers' stops
	routers map[engine.ChannelName]routerInfo
	closed  bool

	// backlogs is each channel's backlog policy in the config in service,
	// read by the dispatcher without a lock; Apply replaces it.
	backlogs atomic.Pointer[map[engine.ChannelName]engine.BacklogPolicy]
}

type workerKey struct {
	channel engine.ChannelName
	id      string
}

// run is one configured worker: its config and the process serving it now.
type run struct {
	cfg     config.Worker
	cur     atomic.Pointer[local.Worker]
	retired atomic.Bool // taken out of service: do not restart
}

// New starts every channel of cfg with its router and local workers.
func New(cfg *config.Config, opts Options) (*Node, error) {
	if cfg == nil {
		return nil, errors.New("node: no config")
	}
	n := &Node{
		table:    router.NewTable(router.KeepRecent(opts.RecentDecisions)),
		pool:     local.NewPool(),
		seed:     opts.Seed,
		log:      opts.Logger,
		workers:  map[workerKey]*run{},
		progs:    map[workerKey]func(){},
		routers:  map[engine.ChannelName]routerInfo{},
		programs: opts.Programs,
		cfg:      &config.Config{File: cfg.File},
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	n.stats = newStats(opts.Recorder)
	n.backlogs.Store(&map[engine.ChannelName]engine.BacklogPolicy{})
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.fleet = newFleet(n.pool, opts.Remote, n.ctx.Done(), n.log)
	var r engine.Router = n.table
	if opts.WrapRouter != nil {
		r = opts.WrapRouter(r)
	}
	d, err := engine.NewDispatcher(engine.Options{Pool: n.fleet, Router: r, Conversations: n.fleet,
		Recorder: n.stats, IDs: opts.IDs, Backlog: n.BacklogPolicy, Capacity: n.fleet})
	if err != nil {
		return nil, err
	}
	n.disp = d
	if err := n.Apply(cfg); err != nil {
		return nil, errors.Join(err, n.Close(context.Background()))
	}
	return n, nil
}

// Dispatch sends req to a worker of the channel namespace/req.TaskQueue
// and returns its result (see engine.Dispatcher.Dispatch).
func (n *Node) Dispatch(ctx context.Context, namespace string, req engine.ActivityRequest) (engine.ActivityResult, error) {
	return n.disp.Dispatch(ctx, namespace, req)
}

// BacklogPolicy returns the backlog policy of channel in the config in
// service: what the node's dispatcher asks before an activity waits. It
// follows Apply, and a channel the config does not have gets the zero
// policy (the engine's defaults).
func (n *Node) BacklogPolicy(channel engine.ChannelName) engine.BacklogPolicy {
	return (*n.backlogs.Load())[channel]
}

// Config returns the config in service.
func (n *Node) Config() *config.Config {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg
}

// Gate is the reload gate of the node's channels (a config.GateFunc, for
// config.WatchOptions): it runs ch's router, as file would put it in
// service, over the last decisions the channel made (router.Slot.Recent),
// or over synthetic ones from its configured workers when it has made none,
// and refuses a version that errors, times out or names no candidate on
// any of them.
func (n *Node) Gate(ctx context.Context, ch config.Channel, file string) (router.GateReport, error) {
	var recent []router.Sample
	if s, ok := n.table.Slot(ch.Name); ok {
		recent = s.Recent()
	}
	return ch.Gate(ctx, file, recent)
}

// Apply puts next in service in place of the node's current config (it
// is a config.WatchOptions.Apply): added channels start; removed ones stop
// taking dispatches (those get an unknown-channel error) and their workers
// finish what they have; a changed
// routing swaps the channel's router slot; a changed backlog policy
// (max_backlog, when_full, schedule_to_start) holds from then on; added,
// removed and changed workers start, drain and are replaced. Nothing in
// flight is disturbed.
// It fails only on a closed node: a worker that cannot start (which a
// validated config does not have) is logged, and the rest is applied.
func (n *Node) Apply(next *config.Config) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("node: closed")
	}
	// Every step is linear in the channels: the table and the pool copy
	// their maps of channels once for all the channels added, and once for
	// all those removed.
	cur := make(map[engine.ChannelName]config.Channel, len(n.cfg.Channels))
	for _, ch := range n.cfg.Channels {
		cur[ch.Name] = ch
	}
	// The new policies hold from now on; a channel being removed keeps
	// its own until it is gone.
	policies := next.BacklogPolicies()
	during, cloned := policies, false
	for _, ch := range n.cfg.Channels {
		if _, kept := policies[ch.Name]; !kept {
			if !cloned {
				during, cloned = maps.Clone(policies), true
			}
			during[ch.Name] = ch.Backlog
		}
	}
	n.backlogs.Store(&during)
	addedRoutes := map[engine.ChannelName]engine.Router{}
	var added []engine.ChannelName
	for _, ch := range next.Channels {
		old, had := cur[ch.Name]
		switch {
		case !had:
			r := ch.Router(next.File)
			addedRoutes[ch.Name] = r
			n.routers[ch.Name] = routerInfo{version: r.Version(), loaded: time.Now()}
			added = append(added, ch.Name)
			level := slog.LevelInfo
			if len(n.cfg.Channels) == 0 {
				level = slog.LevelDebug // starting: every channel is new
			}
			n.log.Log(context.Background(), level, "channel added", "channel", ch.Name.Short(), "router", ch.Routing.SourceName(ch, next.File))
		case routingChanged(old, ch, n.cfg.File, next.File):
			r := ch.Router(next.File)
			n.table.Set(ch.Name, r) // a slot already there: nothing is copied
			n.routers[ch.Name] = routerInfo{version: r.Version(), loaded: time.Now()}
			n.fleet.Poke(ch.Name) // the new version may take what the old held back
			n.log.Info("router swapped", "channel", ch.Name.Short(), "router", ch.Routing.SourceName(ch, next.File),
				"hash", ch.Routing.Program.Hash())
		}
		if had && old.Backlog != ch.Backlog {
			s2s := "none"
			if ch.Backlog.ScheduleToStart > 0 {
				s2s = ch.Backlog.ScheduleToStart.String()
			}
			n.log.Info("backlog policy changed", "channel", ch.Name.Short(), "max_backlog", ch.Backlog.MaxBacklog,
				"when_full", config.WhenFull(ch.Backlog), "schedule_to_start", s2s)
		}
	}
	n.table.SetAll(addedRoutes)
	n.fleet.AddChannels(added...)
	for _, ch := range next.Channels {
		old := cur[ch.Name]
		delete(cur, ch.Name)
		n.applyWorkers(ch.Name, old.Workers, ch.Workers)
	}
	removed := make([]engine.ChannelName, 0, len(cur))
	for _, ch := range n.cfg.Channels { // in the old config's order
		if _, gone := cur[ch.Name]; gone {
			removed = append(removed, ch.Name)
		}
	}
	n.table.Remove(removed...)
	n.pool.RemoveChannels(removed...)
	n.backlogs.Store(&policies)
	for _, name := range removed {
		delete(n.routers, name)
		for _, w := range cur[name].Workers {
			n.retire(workerKey{name, w.ID}, "channel removed")
		}
		n.log.Info("channel removed", "channel", name.Short())
	}
	n.cfg = next
	return nil
}

// routingChanged reports whether a channel's router must be swapped: an
// inline script that moved in the file is one, so that its run-time errors
// name its new lines.
func routingChanged(old, next config.Channel, oldFile, nextFile string) bool {
	return old.Routing.Program.Hash() != next.Routing.Program.Hash() ||
		old.Routing.SourceName(old, oldFile) != next.Routing.SourceName(next, nextFile) ||
		old.Routing.LineOffset != next.Routing.LineOffset ||
		old.ScriptTimeout != next.ScriptTimeout
}

// applyWorkers starts, retires and replaces the workers of channel. n.mu is
// held.
func (n *Node) applyWorkers(channel engine.ChannelName, old, next []config.Worker) {
	was := make(map[string]config.Worker, len(old))
	for _, o := range old {
		was[o.ID] = o
	}
	is := make(map[string]bool, len(next))
	keep := map[string]bool{}
	for _, w := range next {
		is[w.ID] = true
		if o, ok := was[w.ID]; ok && sameWorker(o, w) {
			keep[w.ID] = true
		}
	}
	for _, o := range old {
		if !keep[o.ID] {
			if len(o.Exec) == 0 {
				n.pool.Remove(channel, o.ID)
			}
			n.retire(workerKey{channel, o.ID}, "worker removed from the config")
			if !is[o.ID] {
				n.log.Info("worker removed; it finishes what it has", "channel", channel.Short(), "worker", o.ID)
			}
		}
	}
	for _, w := range next {
		if keep[w.ID] {
			continue
		}
		if err := n.startWorker(channel, w); err != nil {
			n.log.Error("worker not started", "channel", channel.Short(), "worker", w.ID, "err", err)
			continue
		}
		_, replaced := was[w.ID]
		switch {
		case replaced:
			n.log.Info("worker replaced", "channel", channel.Short(), "worker", w.ID)
		case len(old) > 0:
			n.log.Info("worker added", "channel", channel.Short(), "worker", w.ID)
		}
	}
}

// sameWorker reports whether two configs of a worker run the same way.
func sameWorker(a, b config.Worker) bool {
	a.Pos, b.Pos = config.Position{}, config.Position{}
	return reflect.DeepEqual(a, b)
}

// retire takes a worker out of service: it finishes what it has and exits,
// and is not restarted. n.mu is held.
func (n *Node) retire(key workerKey, why string) {
	if stop, ok := n.progs[key]; ok {
		delete(n.progs, key)
		stop()
		return
	}
	r, ok := n.workers[key]
	if !ok {
		return
	}
	delete(n.workers, key)
	r.retired.Store(true)
	if w := r.cur.Load(); w != nil {
		w.Drain(why)
	}
}

// startWorker starts a configured worker and watches it for exits. n.mu is
// held.
func (n *Node) startWorker(channel engine.ChannelName, wc config.Worker) error {
	if len(wc.Exec) > 0 {
		if n.programs == nil {
			return errors.New("it runs a program (exec), and this node starts none: give dispatch run --nats or --nats-listen")
		}
		stop, err := n.programs.Start(n.ctx, channel, wc)
		if err != nil {
			return err
		}
		n.progs[workerKey{channel, wc.ID}] = stop
		return nil
	}
	r := &run{cfg: wc}
	if err := n.spawn(channel, r); err != nil {
		return err
	}
	n.workers[workerKey{channel, wc.ID}] = r
	n.stats.started(channel, wc.ID)
	return nil
}

// spawn starts r's process in the pool, in the place of an exited one, and a
// goroutine that restarts it when it exits, if its behaviour says so. n.mu
// is held.
func (n *Node) spawn(channel engine.ChannelName, r *run) error {
	// The process the handler belongs to: known once Start returns, and a
	// handler may run before that, so it waits for ready.
	self, ready := new(atomic.Pointer[local.Worker]), make(chan struct{})
	w, err := n.pool.Start(channel, local.WorkerConfig{ID: r.cfg.ID, MaxInFlight: r.cfg.MaxInFlight, Tags: r.cfg.Tags,
		Labels:  r.cfg.Labels,
		Handler: n.simulate(channel, r.cfg, self, ready)})
	if err != nil {
		return err
	}
	self.Store(w)
	close(ready)
	r.cur.Store(w)
	n.wg.Add(1)
	go n.supervise(channel, r, w)
	return nil
}

// supervise waits for w to exit and, unless it was retired or the node
// closes, restarts it after its restart_after.
func (n *Node) supervise(channel engine.ChannelName, r *run, w *local.Worker) {
	defer n.wg.Done()
	select {
	case <-n.ctx.Done():
		return
	case <-w.Done():
	}
	if r.retired.Load() {
		return
	}
	after := r.cfg.Behavior.RestartAfter
	n.log.Debug("worker exited", "channel", channel.Short(), "worker", r.cfg.ID, "message", w.ExitMessage())
	if after <= 0 {
		return
	}
	t := time.NewTimer(after)
	defer t.Stop()
	select {
	case <-n.ctx.Done():
		return
	case <-t.C:
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || r.retired.Load() {
		return
	}
	if err := n.spawn(channel, r); err != nil {
		n.log.Error("worker restart failed", "channel", channel.Short(), "worker", r.cfg.ID, "err", err)
		return
	}
	n.stats.restarted(channel, r.cfg.ID)
	n.log.Debug("worker restarted", "channel", channel.Short(), "worker", r.cfg.ID)
}

// Close stops every worker, waiting for their handlers to return, or until
// ctx ends. Dispatches after Close fail.
func (n *Node) Close(ctx context.Context) error {
	n.mu.Lock()
	n.closed = true
	for key, stop := range n.progs {
		delete(n.progs, key)
		stop()
	}
	n.mu.Unlock()
	n.cancel()
	err := n.pool.Close(ctx)
	n.wg.Wait()
	return err
}

// simulate returns the handler that plays a worker's behaviour: wait its
// latency and jitter, then exit, fail or complete (echoing the input), as
// its rates draw. The draws of an activity depend only on the seed, the
// channel, the worker and the activity (workflow, type, input), not on
// which executor runs it when, so the same activity on the same worker
// always fares the same.
func (n *Node) simulate(channel engine.ChannelName, wc config.Worker, self *atomic.Pointer[local.Worker], ready <-chan struct{}) local.Handler {
	b := wc.Behavior
	return func(ctx context.Context, req engine.ActivityRequest) engine.ActivityResult {
		select {
		case <-ready:
		case <-ctx.Done():
			return engine.Failed("cancelled")
		}
		g := n.draws(channel, wc.ID, req)
		wait := b.Latency
		if b.Jitter > 0 {
			wait += time.Duration(g.Int64N(int64(b.Jitter)))
		}
		u := g.Float64()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return engine.Failed("cancelled")
			case <-t.C:
			}
		}
		switch {
		case u < b.ExitRate:
			n.stats.exited(channel, wc.ID)
			self.Load().Stop(fmt.Sprintf("simulated exit (exit_rate %g)", b.ExitRate))
			return engine.ActivityResult{} // an exited worker's answer is dropped
		case u < b.ExitRate+b.FailRate:
			return engine.Failed(fmt.Sprintf("simulated failure (fail_rate %g)", b.FailRate))
		}
		return engine.Completed(req.Input)
	}
}

// draws returns the generator of one activity on one worker.
func (n *Node) draws(channel engine.ChannelName, worker string, req engine.ActivityRequest) *rand.Rand {
	h := fnv.New64a()
	for _, part := range []string{channel.String(), worker, req.WorkflowID, req.ActivityType, req.Input.ContentType} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(req.Input.Data)
	return rand.New(rand.NewPCG(n.seed, h.Sum64()))
}
