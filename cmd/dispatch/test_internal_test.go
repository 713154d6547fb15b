package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/scenario"
)

// TestPrintChangesIsAScreenful: a golden failure shows at most
// maxChangesShown field changes and says how many more -v would show.
func TestPrintChangesIsAScreenful(t *testing.T) {
	res := scenario.Result{File: "s.yaml", Golden: "s.golden.jsonl", Diff: "--- s.golden.jsonl\n+++ run\n"}
	for i := range maxChangesShown + 5 {
		res.Changes = append(res.Changes, fmt.Sprintf("op %d message_sent: worker_id \"a\" → \"b\"", i+1))
	}
	var b strings.Builder
	printTestResult(&b, "s.yaml", res, false)
	out := b.String()
	if n := strings.Count(out, "message_sent"); n != maxChangesShown {
		t.Errorf("%d changes shown, want %d:\n%s", n, maxChangesShown, out)
	}
	if !strings.Contains(out, "… 5 more; -v shows the whole diff") {
		t.Errorf("no count of the rest:\n%s", out)
	}
	b.Reset()
	printTestResult(&b, "s.yaml", res, true)
	if out := b.String(); !strings.Contains(out, "+++ run") || strings.Contains(out, "message_sent") {
		t.Errorf("-v: %s", out)
	}
}
