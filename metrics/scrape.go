package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// scrapeCollector reads the families of Options at scrape time and emits
// them as constant metrics, so that a channel that is gone is gone from the
// next scrape.
type scrapeCollector struct {
	reloads  func() Reloads
	channels func() []ChannelGauge

	reloadsDesc *prometheus.Desc
	backlogDesc *prometheus.Desc
	workersDesc *prometheus.Desc
	latencyDesc *prometheus.Desc
	peakDesc    *prometheus.Desc
	errorsDesc  *prometheus.Desc
	exitsDesc   *prometheus.Desc
}

func newScrapeCollector(opts Options) *scrapeCollector {
	return &scrapeCollector{
		reloads:  opts.Reloads,
		channels: opts.Channels,
		reloadsDesc: prometheus.NewDesc("dispatch_reloads_total",
			"Config reloads since the node started, by result: applied, refused (by the reload gate) or failed (did not load or apply).",
			[]string{"result"}, nil),
		backlogDesc: prometheus.NewDesc("dispatch_backlog_depth",
			"Activities waiting in the channel's backlog now.",
			[]string{"channel"}, nil),
		workersDesc: prometheus.NewDesc("dispatch_workers",
			"Workers connected to the channel and serving it now.",
			[]string{"channel"}, nil),
		latencyDesc: prometheus.NewDesc("dispatch_worker_latency_ewma_seconds",
			"The channel's moving average of the worker's answer time (latency_ewma; 0 before its first answer).",
			[]string{"channel", "worker"}, nil),
		peakDesc: prometheus.NewDesc("dispatch_worker_latency_peak_ewma_seconds",
			"The channel's peak-sensitive average of the worker's answer time, as routers see it now (latency_peak_ewma).",
			[]string{"channel", "worker"}, nil),
		errorsDesc: prometheus.NewDesc("dispatch_worker_error_rate",
			"The channel's moving average of the worker's failed answers among its answers, 0..1, as routers see it now (error_rate).",
			[]string{"channel", "worker"}, nil),
		exitsDesc: prometheus.NewDesc("dispatch_worker_recent_exits",
			"The channel's activities the worker left unanswered in the last minute, at most 16 (exits).",
			[]string{"channel", "worker"}, nil),
	}
}

// Describe implements [prometheus.Collector].
func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.reloads != nil {
		ch <- c.reloadsDesc
	}
	if c.channels != nil {
		ch <- c.backlogDesc
		ch <- c.workersDesc
		ch <- c.latencyDesc
		ch <- c.peakDesc
		ch <- c.errorsDesc
		ch <- c.exitsDesc
	}
}

// Collect implements [prometheus.Collector].
func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.reloads != nil {
		r := c.reloads()
		emit(ch, c.reloadsDesc, prometheus.CounterValue, float64(r.Applied), "applied")
		emit(ch, c.reloadsDesc, prometheus.CounterValue, float64(r.Refused), "refused")
		emit(ch, c.reloadsDesc, prometheus.CounterValue, float64(r.Failed), "failed")
	}
	if c.channels != nil {
		gauges := c.channels()
		seen := make(map[string]bool, len(gauges))
		for _, g := range gauges {
			if seen[g.Channel] {
				continue // a second entry would fail the whole scrape
			}
			seen[g.Channel] = true
			emit(ch, c.backlogDesc, prometheus.GaugeValue, float64(g.Backlog), g.Channel)
			emit(ch, c.workersDesc, prometheus.GaugeValue, float64(g.Workers), g.Channel)
			workers := make(map[string]bool, len(g.Figures))
			for _, f := range g.Figures {
				if workers[f.Worker] {
					continue
				}
				workers[f.Worker] = true
				emit(ch, c.latencyDesc, prometheus.GaugeValue, f.LatencyEWMA, g.Channel, f.Worker)
				emit(ch, c.peakDesc, prometheus.GaugeValue, f.LatencyPeakEWMA, g.Channel, f.Worker)
				emit(ch, c.errorsDesc, prometheus.GaugeValue, f.ErrorRate, g.Channel, f.Worker)
				emit(ch, c.exitsDesc, prometheus.GaugeValue, float64(f.Exits), g.Channel, f.Worker)
			}
		}
	}
}

// emit sends one constant metric, or, if its label values are not valid,
// an invalid metric that makes the scrape report the error.
func emit(ch chan<- prometheus.Metric, desc *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(desc, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(desc, err)
	}
	ch <- m
}
