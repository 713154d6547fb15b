package journal_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/journal"
)

// TestDocsExamples: the journal lines of docs/journal.md read, and each
// example that is a whole journal (from seq 1) checks clean and replays.
func TestDocsExamples(t *testing.T) {
	raw, err := os.ReadFile("../docs/journal.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(raw), "```json\n")[1:]
	whole := 0
	for i, b := range blocks {
		text, _, ok := strings.Cut(b, "```")
		if !ok {
			t.Fatalf("example %d is not closed", i+1)
		}
		ops, truncated, err := journal.ReadAll(strings.NewReader(text))
		if err != nil || truncated != 0 || len(ops) == 0 {
			t.Errorf("example %d: %d lines, %v, a torn line at %d", i+1, len(ops), err, truncated)
			continue
		}
		if ops[0].Seq != 1 {
			continue // a line out of a journal
		}
		whole++
		if p := check(ops); len(p) != 0 {
			t.Errorf("example %d: %v", i+1, p)
		}
		rep, err := journal.Verify(context.Background(), bytes.NewReader([]byte(text)))
		if err != nil || rep.Problems != 0 {
			t.Errorf("example %d: verify: %v, %d problems, the first %v", i+1, err, rep.Problems, rep.First)
		}
	}
	if whole < 2 {
		t.Errorf("%d whole journals among the examples; want the crash and the saturated channel", whole)
	}
}
