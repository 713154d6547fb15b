package exprrt

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/aion-dispatch/dispatch/router/internal/names"
)

// exprTags returns the expr tags of v's fields, in order.
func exprTags(v any) []string {
	t := reflect.TypeOf(v)
	var out []string
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("expr"); tag != "" {
			out = append(out, tag)
		}
	}
	return out
}

// TestEnvMatchesNames: the request and a candidate have exactly the table
// of names' expr fields, in its order, and both the compiler's environment
// and a runner's hold exactly its expr helpers besides request, candidates
// and excluded.
func TestEnvMatchesNames(t *testing.T) {
	if got, want := exprTags(exprRequest{}), names.Expr(names.RequestField); !slices.Equal(got, want) {
		t.Errorf("exprRequest has %v, the table of names %v", got, want)
	}
	if got, want := exprTags(exprCandidate{}), names.Expr(names.CandidateField); !slices.Equal(got, want) {
		t.Errorf("exprCandidate has %v, the table of names %v", got, want)
	}
	want := slices.Sorted(slices.Values(append(names.Expr(names.Helper), "request", "candidates", "excluded")))
	if got := slices.Sorted(maps.Keys(exprEnvTypes())); !slices.Equal(got, want) {
		t.Errorf("the compiler's environment has %v, want %v", got, want)
	}
	p, err := Compile([]byte(`nil`), Limits{MaxNodes: 100, MemoryBudget: 1000, PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(p.get().env)); !slices.Equal(got, want) {
		t.Errorf("a runner's environment has %v, want %v", got, want)
	}
}
