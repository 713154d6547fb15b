package engine

import (
	"fmt"
	"slices"
	"testing"
)

// BenchmarkRerouteCandidates: what a re-route pays to leave its excluded
// workers out of 16 candidates: a copy without them (NewSelection on a
// slice it may not change) against the dispatcher's own snapshot, dropped
// in place. Each iteration starts from a fresh copy of the snapshot, as
// the pool hands one to every attempt.
func BenchmarkRerouteCandidates(b *testing.B) {
	ch, err := DispatchChannel("prod", "email")
	if err != nil {
		b.Fatal(err)
	}
	template := make([]Worker, 16)
	for i := range template {
		template[i] = Worker{State: ConsumerStateView{ID: fmt.Sprintf("w%d", i), MaxInFlight: 4}}
	}
	excluded := []string{"w3"}
	snapshot := make([]Worker, len(template))
	b.Run("copy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			copy(snapshot, template)
			sel := NewSelection(ch, "c1", 2, ActivityRequest{}, snapshot, excluded)
			if len(sel.Candidates) != 15 {
				b.Fatal(len(sel.Candidates))
			}
		}
	})
	b.Run("in-place", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ws := snapshot[:copy(snapshot, template)]
			ws = slices.DeleteFunc(ws, func(w Worker) bool { return slices.Contains(excluded, w.ID()) })
			sel := NewSelection(ch, "c1", 2, ActivityRequest{}, ws, excluded)
			if len(sel.Candidates) != 15 {
				b.Fatal(len(sel.Candidates))
			}
		}
	})
}
