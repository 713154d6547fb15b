package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Changes compares two journals line by line (the n-th operation of each)
// and says, field by field, what differs: `op 7 worker_selected: worker_id
// "eu-1" → "eu-2"`, a whole operation only one of them has, or a line that
// is not JSON. Values are written as JSON, those over a few dozen bytes
// cut short. It is what a reader wants first of a golden failure; the
// unified diff ([Result.Diff]) has everything.
func Changes(golden, run []byte) []string {
	g, r := lines(golden), lines(run)
	var out []string
	for i := range max(len(g), len(r)) {
		n := i + 1
		switch {
		case i >= len(r):
			out = append(out, fmt.Sprintf("op %d %s: only in the golden journal", n, kindOf(g[i])))
		case i >= len(g):
			out = append(out, fmt.Sprintf("op %d %s: only in the run", n, kindOf(r[i])))
		default:
			out = append(out, lineChanges(n, g[i], r[i])...)
		}
	}
	return out
}

func lines(b []byte) [][]byte {
	var out [][]byte
	for _, l := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// kindOf is a line's kind, or "(not JSON)".
func kindOf(line []byte) string {
	var v struct {
		Kind string `json:"kind"`
	}
	if json.Unmarshal(line, &v) != nil {
		return "(not JSON)"
	}
	return v.Kind
}

// lineChanges says what differs between the n-th lines of the two.
func lineChanges(n int, golden, run []byte) []string {
	if bytes.Equal(golden, run) {
		return nil
	}
	var g, r map[string]any
	if json.Unmarshal(golden, &g) != nil || json.Unmarshal(run, &r) != nil {
		return []string{fmt.Sprintf("op %d: the lines differ and one is not JSON", n)}
	}
	kind := kindOf(run)
	if gk := kindOf(golden); gk != kind {
		kind = gk + " → " + kind
	}
	var diffs []string
	compareJSON("", g, r, &diffs)
	out := make([]string, len(diffs))
	for i, d := range diffs {
		out[i] = fmt.Sprintf("op %d %s: %s", n, kind, d)
	}
	return out
}

// compareJSON appends to out each field path whose values differ in a and b.
func compareJSON(path string, a, b any, out *[]string) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := slices.Sorted(maps.Keys(am))
		var added []string // the run's keys the golden lacks, after the golden's
		for k := range bm {
			if _, ok := am[k]; !ok {
				added = append(added, k)
			}
		}
		slices.Sort(added)
		keys = append(keys, added...)
		for _, k := range keys {
			compareJSON(join(path, k), am[k], bm[k], out)
		}
		return
	}
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok && bok && len(as) == len(bs) {
		for i := range as {
			compareJSON(fmt.Sprintf("%s[%d]", path, i), as[i], bs[i], out)
		}
		return
	}
	if ja, jb := jsonText(a), jsonText(b); ja != jb {
		*out = append(*out, fmt.Sprintf("%s %s → %s", path, shorten(ja), shorten(jb)))
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonText writes v as JSON, "(none)" when absent.
func jsonText(v any) string {
	if v == nil {
		return "(none)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// shorten cuts a value for display to 60 characters; values are compared
// whole.
func shorten(s string) string {
	if r := []rune(s); len(r) > 60 {
		return string(r[:57]) + "…"
	}
	return s
}
