package journal_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/journal"
)

// countingObserver adds up what a Writer's flusher tells it.
type countingObserver struct {
	mu     sync.Mutex
	writes int
	bytes  int
	syncs  int
	took   []time.Duration
}

func (o *countingObserver) Wrote(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes++
	o.bytes += n
}

func (o *countingObserver) Synced(took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.syncs++
	o.took = append(o.took, took)
}

// counts returns the bytes told and the syncs told so far.
func (o *countingObserver) counts() (bytes, syncs int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bytes, o.syncs
}

var _ journal.Observer = (*countingObserver)(nil)

// The observer of a journal on a real file is told every byte that reaches
// the file, and under FsyncBatch a sync before the close of a conversation
// returns; under FsyncNever, no sync at all.
func TestObserverSeesWritesAndSyncs(t *testing.T) {
	for _, mode := range []journal.Fsync{journal.FsyncBatch, journal.FsyncInterval, journal.FsyncNever} {
		t.Run(mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.jsonl")
			obs := &countingObserver{}
			w, _, err := journal.Open(path, journal.Options{Fsync: mode, Interval: time.Hour, Now: clock(), Observer: obs})
			if err != nil {
				t.Fatal(err)
			}
			ops := sampleOps(t)
			for _, op := range ops {
				if err := w.Record(context.Background(), op); err != nil {
					t.Fatal(err)
				}
			}
			// The close of the conversation has returned: under FsyncBatch
			// its commit, write and sync, is over, and was told.
			bytes, syncs := obs.counts()
			switch mode {
			case journal.FsyncBatch:
				if bytes == 0 || syncs == 0 {
					t.Errorf("after the close returned: %d bytes, %d syncs told; want a write and a sync", bytes, syncs)
				}
			case journal.FsyncInterval:
				if bytes == 0 || syncs != 0 {
					t.Errorf("after the close returned: %d bytes, %d syncs told; want a write and no sync yet", bytes, syncs)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			bytes, syncs = obs.counts()
			if int64(bytes) != info.Size() || info.Size() == 0 {
				t.Errorf("observer told %d bytes; the file holds %d", bytes, info.Size())
			}
			if mode == journal.FsyncNever && syncs != 0 {
				t.Errorf("FsyncNever: %d syncs told, want none", syncs)
			}
			if mode != journal.FsyncNever && syncs == 0 {
				t.Errorf("%s: Close synced, but no sync was told", mode)
			}
			for _, d := range obs.took {
				if d < 0 {
					t.Errorf("a sync took %v", d)
				}
			}
		})
	}
}

// shortWriter accepts the first n bytes of a write, then fails.
type shortWriter struct{ n int }

func (s shortWriter) Write(p []byte) (int, error) {
	return min(s.n, len(p)), errors.New("device full")
}

// A write that fails part way tells the bytes the output accepted.
func TestObserverSeesAShortWrite(t *testing.T) {
	obs := &countingObserver{}
	w := journal.NewWriter(shortWriter{n: 7}, journal.Options{Observer: obs})
	ops := sampleOps(t)
	_ = w.Record(context.Background(), ops[0])
	if err := w.Record(context.Background(), ops[len(ops)-1]); err == nil {
		t.Fatal("the close of a conversation recorded on a failing output succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("Close hid the write error")
	}
	if bytes, syncs := obs.counts(); bytes != 7 || syncs != 0 {
		t.Errorf("told %d bytes and %d syncs; want 7 bytes, no sync (the output cannot sync)", bytes, syncs)
	}
}
