package exprfast

import (
	"testing"

	"github.com/aion-dispatch/dispatch/router/internal/names"
)

// TestNamesCovered: every request field and candidate field of the table
// of names is one the compiled code reads.
func TestNamesCovered(t *testing.T) {
	for _, name := range names.Expr(names.RequestField) {
		if _, ok := requestFields[name]; !ok {
			t.Errorf("request field %s is not read by the fast path", name)
		}
	}
	for _, name := range names.Expr(names.CandidateField) {
		if candFields[name] == fieldNone {
			t.Errorf("candidate field %s is not read by the fast path", name)
		}
	}
}
