package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// JournalObserver feeds the journal families from a journal writer's
// flusher. It has the methods of journal.Observer: set it as the
// journal.Options Observer.
type JournalObserver struct {
	bytes prometheus.Counter
	fsync prometheus.Observer
}

// Journal returns the observer that feeds dispatch_journal_bytes_total and
// dispatch_journal_fsync_seconds.
func (m *Metrics) Journal() *JournalObserver {
	return &JournalObserver{bytes: m.journalBytes, fsync: m.journalFsync}
}

// Wrote adds n to dispatch_journal_bytes_total.
func (o *JournalObserver) Wrote(n int) { o.bytes.Add(float64(n)) }

// Synced observes took in dispatch_journal_fsync_seconds.
func (o *JournalObserver) Synced(took time.Duration) { o.fsync.Observe(took.Seconds()) }
