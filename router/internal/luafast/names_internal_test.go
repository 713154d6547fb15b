package luafast

import (
	"testing"

	"github.com/aion-dispatch/dispatch/router/internal/names"
)

// TestNamesCovered: every request field and candidate field or method of
// the table of names is one the compiled code reads.
func TestNamesCovered(t *testing.T) {
	for _, n := range names.Of(names.RequestField) {
		if _, ok := requestFields[n.Lua]; !ok {
			t.Errorf("request field %s is not read by the fast path", n.Lua)
		}
	}
	for _, k := range []names.Kind{names.CandidateField, names.CandidateMethod} {
		for _, n := range names.Of(k) {
			if candFields[n.Lua] == fieldNone {
				t.Errorf("candidate name %s is not read by the fast path", n.Lua)
			}
		}
	}
}
