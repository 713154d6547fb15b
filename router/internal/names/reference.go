package names

import (
	"bytes"
	"fmt"
	"strings"
)

// The reference tables of docs/scripting.md, generated from the table.

// DocsPath is where the reference lives, from the module's root.
const DocsPath = "docs/scripting.md"

// sections are the generated parts of the reference, by marker name.
var sections = []struct {
	name   string
	render func() string
}{
	{"request", func() string { return fields(RequestField) }},
	{"candidate", func() string { return fields(CandidateField, CandidateMethod) }},
	{"helpers", helpers},
}

// fields renders the rows of kinds as a table of fields and methods.
func fields(kinds ...Kind) string {
	var b strings.Builder
	b.WriteString("| field | type | |\n|---|---|---|\n")
	for _, n := range table {
		for _, k := range kinds {
			if n.Kind != k || n.Hidden {
				continue
			}
			name := n.Lua
			if k == CandidateMethod {
				name += "(" + n.Params + ")"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", name, n.Type, n.Doc)
		}
	}
	return b.String()
}

// helpers renders the helpers as a table of both languages' names.
func helpers() string {
	var b strings.Builder
	b.WriteString("| Lua (`dispatch.…`) | expr | returns | |\n|---|---|---|---|\n")
	call := func(name, params string) string {
		if name == "" {
			return "—"
		}
		return "`" + name + "(" + params + ")`"
	}
	for _, n := range Of(Helper) {
		if !n.Hidden {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", call(n.Lua, n.Params), call(n.Expr, n.Params), n.Type, n.Doc)
		}
	}
	return b.String()
}

func markers(name string) (begin, end string) {
	return "<!-- names:" + name + ":begin (generated from router/internal/names: go generate ./router/internal/names) -->\n",
		"<!-- names:" + name + ":end -->"
}

// Splice returns doc with what lies between each pair of markers
// replaced by the section the table renders. It fails when a pair is
// missing or out of order.
func Splice(doc []byte) ([]byte, error) {
	out := doc
	for _, s := range sections {
		begin, end := markers(s.name)
		i := bytes.Index(out, []byte(begin))
		j := bytes.Index(out, []byte(end))
		if i < 0 || j < i {
			return nil, fmt.Errorf("%s: no %q followed by %q", DocsPath, strings.TrimSpace(begin), end)
		}
		i += len(begin)
		out = append(append(append([]byte(nil), out[:i]...), s.render()...), out[j:]...)
	}
	return out, nil
}
