package journal_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/journal/internal/gen"
)

// TestGeneratedJournal: the generator behind the memory benchmark writes
// a journal that checks clean and replays, with every kind of story in it,
// and the same one for the same seed.
func TestGeneratedJournal(t *testing.T) {
	raw, err := io.ReadAll(gen.New(gen.Options{Bytes: 1 << 20, Open: 8, Seed: 7}))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := io.ReadAll(gen.New(gen.Options{Bytes: 1 << 20, Open: 8, Seed: 7}))
	if !bytes.Equal(raw, again) {
		t.Error("two journals generated with the same seed differ")
	}
	for _, kind := range []string{"worker_exited", "worker_timed_out", "NoWorkersAvailable", `"status":"failed"`} {
		if !bytes.Contains(raw, []byte(kind)) {
			t.Errorf("the generated journal has no %s", kind)
		}
	}
	ops, truncated, err := journal.ReadAll(bytes.NewReader(raw))
	if err != nil || truncated != 0 || len(raw) < 1<<20 {
		t.Fatalf("read %d bytes: %v, a torn line at %d", len(raw), err, truncated)
	}
	c := journal.NewChecker()
	for i, op := range ops {
		c.Add(i+1, op)
	}
	if p := c.Problems(); len(p) != 0 {
		t.Fatalf("%d problems, the first: %v", len(p), p[0])
	}
	rep, err := journal.Verify(context.Background(), bytes.NewReader(raw))
	if err != nil || rep.Problems != 0 || len(rep.Unfinished) != 0 || rep.Summary.Operations != len(ops) {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}
