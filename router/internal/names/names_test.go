package names

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsMatchTheTable: the reference tables in docs/scripting.md are
// what the table renders.
func TestDocsMatchTheTable(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", DocsPath))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Splice(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, want) {
		t.Errorf("%s differs from the table of names in router/internal/names; to regenerate it: go generate ./router/internal/names", DocsPath)
	}
}

// TestRows: every row is named in at least one language, names are unique
// per kind and language, helpers are in both languages or marked as one
// language's (by an empty name), arguments agree with the parameters
// written, and every row shown has a doc line.
func TestRows(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range table {
		if n.Lua == "" && n.Expr == "" {
			t.Errorf("%+v: named in neither language", n)
		}
		for lang, name := range map[string]string{"lua": n.Lua, "expr": n.Expr} {
			key := lang + "/" + string(rune('0'+n.Kind)) + "/" + name
			if name != "" && seen[key] {
				t.Errorf("%s name %s is in the table twice", lang, name)
			}
			seen[key] = true
		}
		if n.Doc == "" || n.Type == "" {
			t.Errorf("%+v: no doc line or type", n)
		}
		if n.MinArgs > n.MaxArgs {
			t.Errorf("%s: MinArgs %d > MaxArgs %d", n.Lua, n.MinArgs, n.MaxArgs)
		}
		if n.Kind == Helper || n.Kind == CandidateMethod {
			params := n.Params
			if n.Variadic {
				params = strings.TrimSuffix(params, ", …")
			}
			written := 0
			if params != "" {
				written = strings.Count(params, ",") + 1
			}
			if !n.Variadic && len(n.Args) != written {
				t.Errorf("%s(%s): %d argument types for %d parameters", n.Lua, n.Params, len(n.Args), written)
			}
			if written != n.MaxArgs || (strings.Contains(n.Params, "[") != (n.MinArgs < n.MaxArgs)) {
				t.Errorf("%s(%s): MinArgs %d, MaxArgs %d do not match", n.Lua, n.Params, n.MinArgs, n.MaxArgs)
			}
		}
	}
}

// TestSpliceWantsMarkers: a doc without the markers is an error, not a
// doc left as it was.
func TestSpliceWantsMarkers(t *testing.T) {
	if _, err := Splice([]byte("# no markers\n")); err == nil || !strings.Contains(err.Error(), "names:request:begin") {
		t.Errorf("Splice without markers: %v", err)
	}
}
