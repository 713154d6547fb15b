package metrics_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/metrics"
)

var _ journal.Observer = (*metrics.JournalObserver)(nil)

// Under a real journal on a file, the bytes counted are the file's size,
// and under FsyncBatch the close of each conversation is synced, and the
// sync observed, before its Record returns.
func TestJournalFamiliesFromARealJournal(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{})
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	w, _, err := journal.Open(path, journal.Options{Fsync: journal.FsyncBatch, Observer: m.Journal()})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range history(t) {
		before, _ := histogram(t, reg, "dispatch_journal_fsync_seconds", map[string]string{})
		if err := w.Record(t.Context(), op); err != nil {
			t.Fatal(err)
		}
		if op.Kind != engine.OpConversationClosed {
			continue
		}
		if after, _ := histogram(t, reg, "dispatch_journal_fsync_seconds", map[string]string{}); after <= before {
			t.Errorf("conversation %s: its close returned with %d syncs observed, as many as before it", op.ConversationID, after)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() == 0 {
		t.Fatal("the journal is empty")
	}
	compare(t, reg, fmt.Sprintf("dispatch_journal_bytes_total %d\n", info.Size()), "dispatch_journal_bytes_total")
}
