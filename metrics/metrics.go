// Package metrics exports what a dispatch node does as Prometheus metrics:
// routing decisions, re-routes, worker exits and closed conversations (read
// from the engine's recorded operations), the time routing scripts take and
// how they fail, the journal's writes and syncs, the dispatches the front
// door answers, and, read at scrape time, config reloads, backlog depths and
// connected workers.
//
// Everything registers on the [prometheus.Registerer] the caller gives to
// [New]; the package never touches the global default registry. The
// families and their labels are listed in docs/operations.md.
package metrics

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aion-dispatch/dispatch/engine"
)

// Options are the sources of the families read at scrape time. Each
// function is called on every scrape, possibly concurrently with anything
// else the node does: it must be safe for concurrent use and quick. A nil
// function leaves its families out.
type Options struct {
	// Reloads feeds dispatch_reloads_total.
	Reloads func() Reloads
	// Channels feeds dispatch_backlog_depth and dispatch_workers, one
	// entry per channel; a later entry for a channel already listed is
	// dropped.
	Channels func() []ChannelGauge
}

// Reloads counts the config reloads of a node since it started. From a
// config.WatchStats s: Applied = s.Reloads, Refused = s.Refusals, Failed =
// s.Failures - s.Refusals (Failures counts refusals too).
type Reloads struct {
	Applied int // changes put in service
	Refused int // versions the reload gate refused
	Failed  int // changes that did not load or apply, refusals excluded
}

// ChannelGauge is the state of one channel now.
type ChannelGauge struct {
	Channel string // "namespace/task_queue", as engine.ChannelName.Short gives it
	Backlog int    // activities waiting in the channel's backlog
	Workers int    // workers connected to the channel and serving it
	// Figures are what the channel observed of each worker serving it
	// (see engine.ConsumerStateView), in the order routers see them.
	Figures []WorkerFigures
}

// WorkerFigures is what a channel observed of one of its workers now, as
// its routers see it.
type WorkerFigures struct {
	Worker                                  string
	LatencyEWMA, LatencyPeakEWMA, ErrorRate float64
	Exits                                   int
}

// Metrics holds a node's collectors. Its methods are safe for concurrent
// use.
type Metrics struct {
	decisions        *prometheus.CounterVec
	reroutes         *prometheus.CounterVec
	exits            *prometheus.CounterVec
	conversations    *prometheus.CounterVec
	backlogWait      *prometheus.HistogramVec
	scriptDuration   *prometheus.HistogramVec
	scriptErrors     *prometheus.CounterVec
	journalBytes     prometheus.Counter
	journalFsync     prometheus.Histogram
	dispatchDuration *prometheus.HistogramVec
	inFlight         prometheus.Gauge

	// channels caches, per engine.ChannelName, the channel's label-resolved
	// series (*channelSeries), so that recording an operation or timing a
	// script does not hash label values on every call.
	channels sync.Map
	// now is the clock that times script calls.
	now func() time.Time
}

// Bucket bounds, in seconds.
var (
	// scriptBuckets: 1µs to 131ms, doubling; script calls take microseconds.
	scriptBuckets = prometheus.ExponentialBuckets(1e-6, 2, 18)
	// dispatchBuckets: 100µs to 60s, for a whole dispatch, worker included.
	dispatchBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// waitBuckets: 1ms to 5 minutes, for a wait in a backlog.
	waitBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// fsyncBuckets: 10µs to 1.3s, doubling.
	fsyncBuckets = prometheus.ExponentialBuckets(10e-6, 2, 18)
)

// New creates the collectors and registers them on reg. It fails, having
// registered nothing, if reg refuses one (for example because another
// Metrics is registered there already).
func New(reg prometheus.Registerer, opts Options) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: no registerer")
	}
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dispatch_decisions_total",
			Help: "Activities sent to a worker: worker_selected operations, by channel and chosen worker.",
		}, []string{"channel", "worker"}),
		reroutes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dispatch_reroutes_total",
			Help: "Selections after the conversation's worker exited or did not start the activity (worker_selected with attempt > 1).",
		}, []string{"channel"}),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dispatch_worker_exits_total",
			Help: "Workers that exited while they had an activity (worker_exited operations).",
		}, []string{"channel"}),
		conversations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dispatch_conversations_total",
			Help: "Closed dispatch conversations, by final state: completed or failed.",
		}, []string{"channel", "state"}),
		backlogWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dispatch_backlog_wait_seconds",
			Help:    "How long an activity waited in its channel's backlog before it was sent to a worker.",
			Buckets: waitBuckets,
		}, []string{"channel"}),
		scriptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dispatch_script_duration_seconds",
			Help:    "How long one routing decision took, by channel and the routing logic's language and hash (first 12 characters).",
			Buckets: scriptBuckets,
		}, []string{"channel", "lang", "hash"}),
		scriptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dispatch_script_errors_total",
			Help: "Routing decisions that failed, by kind: timeout, throttled, bad_decision, script_error, unknown_channel or other.",
		}, []string{"channel", "kind"}),
		journalBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dispatch_journal_bytes_total",
			Help: "Bytes written to the journal.",
		}),
		journalFsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dispatch_journal_fsync_seconds",
			Help:    "How long each sync of the journal to stable storage took.",
			Buckets: fsyncBuckets,
		}),
		dispatchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dispatch_duration_seconds",
			Help:    "Dispatches answered by the front door, from request to answer, by transport, channel and outcome.",
			Buckets: dispatchBuckets,
		}, []string{"transport", "channel", "outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dispatch_in_flight",
			Help: "Dispatches being served now.",
		}),
		now: time.Now,
	}
	cs := []prometheus.Collector{m.decisions, m.reroutes, m.exits, m.conversations, m.backlogWait,
		m.scriptDuration, m.scriptErrors, m.journalBytes, m.journalFsync, m.dispatchDuration, m.inFlight}
	if opts.Reloads != nil || opts.Channels != nil {
		cs = append(cs, newScrapeCollector(opts))
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return m, nil
}

// ObserveDispatch records one dispatch the front door answered, in
// dispatch_duration_seconds: transport is "nats" or "http"; channel is
// "namespace/task_queue", or "" when the node does not serve the channel or
// the request was bad, so that a client cannot create series at will;
// outcome is "completed" or why the dispatch failed, such as
// "activity_failed", "no_workers", "backlog_full", "timeout",
// "unknown_channel", "bad_request", "draining", "routing_failed",
// "internal", or "canceled" (the client went away first); took is the
// time from the request to the answer.
func (m *Metrics) ObserveDispatch(transport, channel, outcome string, took time.Duration) {
	m.dispatchDuration.WithLabelValues(label(transport), label(channel), label(outcome)).Observe(took.Seconds())
}

// DispatchStarted adds one to dispatch_in_flight: the front door took a
// dispatch. Every call must be followed by one [Metrics.DispatchEnded].
func (m *Metrics) DispatchStarted() { m.inFlight.Inc() }

// DispatchEnded takes one from dispatch_in_flight: the dispatch was answered.
func (m *Metrics) DispatchEnded() { m.inFlight.Dec() }

// channelSeries are the series of one channel, resolved once.
type channelSeries struct {
	label     string // the channel label: the name's short form
	reroutes  prometheus.Counter
	exits     prometheus.Counter
	completed prometheus.Counter
	failed    prometheus.Counter
	wait      prometheus.Observer
	scriptErr [numErrorKinds]prometheus.Counter // nil for kindUnknownChannel

	decisions sync.Map // worker id → prometheus.Counter
	scripts   sync.Map // scriptVersion → prometheus.Observer
	// lastScript is the version timed last and its observer: a channel
	// runs one version at a time, so most calls find theirs here.
	lastScript atomic.Pointer[scriptSeries]
}

// scriptSeries is the duration histogram of one script version.
type scriptSeries struct {
	version  scriptVersion
	observer prometheus.Observer
}

// scriptVersion is the part of an engine.RouterVersion that labels a
// script's durations.
type scriptVersion struct{ lang, hash string }

// series returns ch's series, creating them (at zero, so that rates start
// from the first operation) the first time the channel is seen.
func (m *Metrics) series(ch engine.ChannelName) *channelSeries {
	if v, ok := m.channels.Load(ch); ok {
		return v.(*channelSeries)
	}
	name := label(ch.Short())
	s := &channelSeries{
		label:     name,
		reroutes:  m.reroutes.WithLabelValues(name),
		exits:     m.exits.WithLabelValues(name),
		completed: m.conversations.WithLabelValues(name, "completed"),
		failed:    m.conversations.WithLabelValues(name, "failed"),
		wait:      m.backlogWait.WithLabelValues(name),
	}
	for k := range s.scriptErr {
		if errorKind(k) != kindUnknownChannel { // counted under channel ""
			s.scriptErr[k] = m.scriptErrors.WithLabelValues(name, errorKind(k).String())
		}
	}
	v, _ := m.channels.LoadOrStore(ch, s)
	return v.(*channelSeries)
}

// decision returns the counter of the decisions for worker on s's channel.
func (m *Metrics) decision(s *channelSeries, worker string) prometheus.Counter {
	if v, ok := s.decisions.Load(worker); ok {
		return v.(prometheus.Counter)
	}
	v, _ := s.decisions.LoadOrStore(worker, m.decisions.WithLabelValues(s.label, label(worker)))
	return v.(prometheus.Counter)
}

// script returns the observer of the durations of version's calls on s's
// channel.
func (m *Metrics) script(s *channelSeries, version scriptVersion) prometheus.Observer {
	if last := s.lastScript.Load(); last != nil && last.version == version {
		return last.observer
	}
	v, ok := s.scripts.Load(version)
	if !ok {
		o := m.scriptDuration.WithLabelValues(s.label, label(version.lang), label(version.hash))
		v, _ = s.scripts.LoadOrStore(version, o)
	}
	o := v.(prometheus.Observer)
	s.lastScript.Store(&scriptSeries{version: version, observer: o})
	return o
}

// label returns s as a label value: valid UTF-8, each invalid byte
// replaced, since WithLabelValues panics on an invalid value (an id from a
// worker, say). It returns s itself when s is valid.
func label(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
