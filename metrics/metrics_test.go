package metrics_test

import (
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newMetrics returns metrics registered on a registry of the test's own.
func newMetrics(t testing.TB, opts metrics.Options) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func channel(t testing.TB, ns, queue string) engine.ChannelName {
	t.Helper()
	ch, err := engine.DispatchChannel(ns, queue)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// compare checks the named families of reg against the exposition text
// want (HELP and TYPE lines may be left out of want: they are added from
// the registry).
func compare(t *testing.T, reg *prometheus.Registry, want string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(withHeaders(t, reg, want, names)), names...); err != nil {
		t.Error(err)
	}
}

// withHeaders prefixes want with the HELP and TYPE lines of the named
// families, as the registry describes them, so that the tests state only
// the samples.
func withHeaders(t *testing.T, reg *prometheus.Registry, want string, names []string) string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range fams {
		for _, n := range names {
			if f.GetName() == n {
				b.WriteString("# HELP " + n + " " + f.GetHelp() + "\n")
				b.WriteString("# TYPE " + n + " " + strings.ToLower(f.GetType().String()) + "\n")
			}
		}
	}
	b.WriteString(want)
	return b.String()
}

// histogram returns the sample count and sum of the series of family name
// whose labels are labels.
func histogram(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (count uint64, sum float64) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if sameLabels(m.GetLabel(), labels) {
				return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0, 0
}

func sameLabels(pairs []*dto.LabelPair, want map[string]string) bool {
	if len(pairs) != len(want) {
		return false
	}
	for _, p := range pairs {
		if v, ok := want[p.GetName()]; !ok || v != p.GetValue() {
			return false
		}
	}
	return true
}

// near reports whether a and b are equal but for float rounding.
func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestNewRegistersOnTheGivenRegistryOnly(t *testing.T) {
	_, reg := newMetrics(t, metrics.Options{})
	// Every family that has no labels is there at once; the others appear
	// with their first series.
	if n, err := testutil.GatherAndCount(reg, "dispatch_in_flight", "dispatch_journal_bytes_total", "dispatch_journal_fsync_seconds"); err != nil || n != 3 {
		t.Errorf("unlabelled series: %d, %v; want 3", n, err)
	}
	// A second Metrics on the same registry is refused, and leaves the
	// first one's collectors as they were.
	if _, err := metrics.New(reg, metrics.Options{}); err == nil {
		t.Error("a second Metrics registered on the same registry")
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 3 {
		t.Errorf("after the refused New: %d series, %v; want 3", n, err)
	}
	// New registers nothing when it fails: a registry that already holds
	// a family of one of its names gets none of New's collectors, not
	// even those registered before the clash was found.
	other := prometheus.NewRegistry()
	clash := prometheus.NewGauge(prometheus.GaugeOpts{Name: "dispatch_in_flight", Help: "taken"})
	other.MustRegister(clash)
	if _, err := metrics.New(other, metrics.Options{}); err == nil {
		t.Fatal("New registered over a family of the same name")
	}
	if n, err := testutil.GatherAndCount(other); err != nil || n != 1 {
		t.Errorf("after the failed New, the registry holds %d series (%v); want only the 1 that was there", n, err)
	}
	if _, err := metrics.New(nil, metrics.Options{}); err == nil {
		t.Error("New without a registerer succeeded")
	}
}

// Every family follows the Prometheus naming conventions.
func TestNamesPassTheLinter(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{
		Reloads:  func() metrics.Reloads { return metrics.Reloads{} },
		Channels: func() []metrics.ChannelGauge { return []metrics.ChannelGauge{{Channel: "a/b"}} },
	})
	feedEveryFamily(t, m)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 14 {
		t.Errorf("%d families, want 14", len(fams))
	}
}

// feedEveryFamily gives each family of m one series.
func feedEveryFamily(t *testing.T, m *metrics.Metrics) {
	t.Helper()
	ch := channel(t, "a", "b")
	rec := m.Recorder(nil)
	for _, op := range []engine.Operation{
		{Kind: engine.OpWorkerSelected, Channel: ch, WorkerID: "w", Attempt: 2, Waited: time.Second},
		{Kind: engine.OpWorkerExited, Channel: ch, WorkerID: "w"},
		{Kind: engine.OpConversationClosed, Channel: ch, State: engine.StateCompleted},
	} {
		if err := rec.Record(t.Context(), op); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Router(stubRouter{}).Select(t.Context(), engine.Selection{Channel: ch}); err != nil {
		t.Fatal(err)
	}
	m.ObserveDispatch("http", "a/b", "completed", time.Millisecond)
	m.Journal().Wrote(1)
	m.Journal().Synced(time.Millisecond)
}

func TestObserveDispatch(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	m.ObserveDispatch("nats", "payments/charge", "completed", 20*time.Millisecond)
	m.ObserveDispatch("nats", "payments/charge", "completed", 30*time.Millisecond)
	m.ObserveDispatch("http", "", "bad_request", 100*time.Microsecond)
	count, sum := histogram(t, reg, "dispatch_duration_seconds",
		map[string]string{"transport": "nats", "channel": "payments/charge", "outcome": "completed"})
	if count != 2 || !near(sum, 0.05) {
		t.Errorf("nats completed: %d observations summing to %v; want 2 summing to 0.05", count, sum)
	}
	count, sum = histogram(t, reg, "dispatch_duration_seconds",
		map[string]string{"transport": "http", "channel": "", "outcome": "bad_request"})
	if count != 1 || !near(sum, 0.0001) {
		t.Errorf("http bad_request: %d observations summing to %v; want 1 summing to 0.0001", count, sum)
	}
	if n, err := testutil.GatherAndCount(reg, "dispatch_duration_seconds"); err != nil || n != 2 {
		t.Errorf("%d series (%v), want 2", n, err)
	}
}

func TestInFlight(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	m.DispatchStarted()
	m.DispatchStarted()
	m.DispatchEnded()
	m.DispatchStarted()
	compare(t, reg, "dispatch_in_flight 2\n", "dispatch_in_flight")
	m.DispatchEnded()
	m.DispatchEnded()
	compare(t, reg, "dispatch_in_flight 0\n", "dispatch_in_flight")
}

func TestJournalObserver(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	o := m.Journal()
	o.Wrote(100)
	o.Wrote(23)
	o.Synced(2 * time.Millisecond)
	m.Journal().Synced(40 * time.Microsecond) // another observer feeds the same families
	compare(t, reg, "dispatch_journal_bytes_total 123\n", "dispatch_journal_bytes_total")
	count, sum := histogram(t, reg, "dispatch_journal_fsync_seconds", map[string]string{})
	if count != 2 || !near(sum, 0.00204) {
		t.Errorf("fsync: %d observations summing to %v; want 2 summing to 0.00204", count, sum)
	}
}

func TestScrapeTimeFamilies(t *testing.T) {
	var mu sync.Mutex
	reloads := metrics.Reloads{Applied: 3, Refused: 1, Failed: 2}
	gauges := []metrics.ChannelGauge{
		{Channel: "payments/charge", Backlog: 7, Workers: 2, Figures: []metrics.WorkerFigures{
			{Worker: "p1", LatencyEWMA: 0.02, LatencyPeakEWMA: 0.035, ErrorRate: 0.5, Exits: 1},
			{Worker: "p2"},
			{Worker: "p1", LatencyEWMA: 9}, // a duplicate does not fail the scrape
		}},
		{Channel: "mail/send", Backlog: 0, Workers: 5},
	}
	_, reg := newMetrics(t, metrics.Options{
		Reloads: func() metrics.Reloads { mu.Lock(); defer mu.Unlock(); return reloads },
		Channels: func() []metrics.ChannelGauge {
			mu.Lock()
			defer mu.Unlock()
			return append([]metrics.ChannelGauge(nil), gauges...)
		},
	})
	compare(t, reg, `
dispatch_reloads_total{result="applied"} 3
dispatch_reloads_total{result="failed"} 2
dispatch_reloads_total{result="refused"} 1
dispatch_backlog_depth{channel="mail/send"} 0
dispatch_backlog_depth{channel="payments/charge"} 7
dispatch_workers{channel="mail/send"} 5
dispatch_workers{channel="payments/charge"} 2
`, "dispatch_reloads_total", "dispatch_backlog_depth", "dispatch_workers")
	compare(t, reg, `
dispatch_worker_latency_ewma_seconds{channel="payments/charge",worker="p1"} 0.02
dispatch_worker_latency_ewma_seconds{channel="payments/charge",worker="p2"} 0
dispatch_worker_latency_peak_ewma_seconds{channel="payments/charge",worker="p1"} 0.035
dispatch_worker_latency_peak_ewma_seconds{channel="payments/charge",worker="p2"} 0
dispatch_worker_error_rate{channel="payments/charge",worker="p1"} 0.5
dispatch_worker_error_rate{channel="payments/charge",worker="p2"} 0
dispatch_worker_recent_exits{channel="payments/charge",worker="p1"} 1
dispatch_worker_recent_exits{channel="payments/charge",worker="p2"} 0
`, "dispatch_worker_latency_ewma_seconds", "dispatch_worker_latency_peak_ewma_seconds", "dispatch_worker_error_rate",
		"dispatch_worker_recent_exits")

	// Read again at the next scrape: a channel that is gone is gone, and a
	// duplicate entry does not fail the scrape.
	mu.Lock()
	reloads.Applied++
	gauges = []metrics.ChannelGauge{{Channel: "payments/charge", Backlog: 1, Workers: 3}, {Channel: "payments/charge", Backlog: 9, Workers: 9}}
	mu.Unlock()
	compare(t, reg, `
dispatch_reloads_total{result="applied"} 4
dispatch_reloads_total{result="failed"} 2
dispatch_reloads_total{result="refused"} 1
dispatch_backlog_depth{channel="payments/charge"} 1
dispatch_workers{channel="payments/charge"} 3
`, "dispatch_reloads_total", "dispatch_backlog_depth", "dispatch_workers")
}

// A nil function leaves its families out, described and collected.
func TestScrapeTimeFamiliesAreOptional(t *testing.T) {
	_, reg := newMetrics(t, metrics.Options{Channels: func() []metrics.ChannelGauge {
		return []metrics.ChannelGauge{{Channel: "a/b", Backlog: 1, Workers: 1}}
	}})
	if n, err := testutil.GatherAndCount(reg, "dispatch_reloads_total"); err != nil || n != 0 {
		t.Errorf("dispatch_reloads_total without Options.Reloads: %d series, %v", n, err)
	}
	if n, err := testutil.GatherAndCount(reg, "dispatch_backlog_depth", "dispatch_workers"); err != nil || n != 2 {
		t.Errorf("channel gauges: %d series, %v; want 2", n, err)
	}
	_, reg = newMetrics(t, metrics.Options{Reloads: func() metrics.Reloads { return metrics.Reloads{} }})
	if n, err := testutil.GatherAndCount(reg, "dispatch_backlog_depth", "dispatch_workers"); err != nil || n != 0 {
		t.Errorf("channel gauges without Options.Channels: %d series, %v", n, err)
	}
	if n, err := testutil.GatherAndCount(reg, "dispatch_reloads_total"); err != nil || n != 3 {
		t.Errorf("dispatch_reloads_total: %d series, %v; want 3", n, err)
	}
}

// A label value that cannot be exposed fails the scrape with an error
// rather than a panic.
func TestScrapeTimeBadLabelIsAnError(t *testing.T) {
	_, reg := newMetrics(t, metrics.Options{Channels: func() []metrics.ChannelGauge {
		return []metrics.ChannelGauge{{Channel: "bad\xff"}}
	}})
	if _, err := reg.Gather(); err == nil {
		t.Error("a channel label that is not UTF-8 gathered without an error")
	}
}

// A label value that is not valid UTF-8 (a worker's id, say) is exposed
// with its invalid bytes replaced, rather than panicking.
func TestInvalidUTF8Labels(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	ch := channel(t, "payments", "charge")
	if err := m.Recorder(nil).Record(t.Context(), engine.Operation{Kind: engine.OpWorkerSelected, Channel: ch,
		WorkerID: "w\xff1", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Router(stubRouter{d: engine.Decision{Version: engine.RouterVersion{Lang: "l\xffua", Hash: "sha256:\xff"}}}).
		Select(t.Context(), engine.Selection{Channel: ch}); err != nil {
		t.Fatal(err)
	}
	m.ObserveDispatch("ht\xfftp", "a/\xff", "compl\xffeted", time.Second)
	compare(t, reg, "dispatch_decisions_total{channel=\"payments/charge\",worker=\"w\uFFFD1\"} 1\n", "dispatch_decisions_total")
	if count, _ := histogram(t, reg, "dispatch_script_duration_seconds",
		map[string]string{"channel": "payments/charge", "lang": "l\uFFFDua", "hash": "\uFFFD"}); count != 1 {
		t.Errorf("%d calls timed, want 1", count)
	}
	if count, _ := histogram(t, reg, "dispatch_duration_seconds",
		map[string]string{"transport": "ht\uFFFDtp", "channel": "a/\uFFFD", "outcome": "compl\uFFFDeted"}); count != 1 {
		t.Errorf("%d dispatches observed, want 1", count)
	}
}
