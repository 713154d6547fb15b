package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/regularfile"
	"github.com/aion-dispatch/dispatch/journal"
)

// GoldenPath returns the golden journal of the scenario file at path.
func GoldenPath(path string) string {
	return strings.TrimSuffix(path, ".yaml") + ".golden.jsonl"
}

// Journal renders operations as journal lines (see docs/journal.md).
func Journal(ops []engine.Operation) ([]byte, error) {
	var buf []byte
	for _, op := range ops {
		var err error
		if buf, err = journal.AppendLine(buf, op); err != nil {
			return nil, fmt.Errorf("seq %d: %w", op.Seq, err)
		}
		buf = append(buf, '\n')
	}
	return buf, nil
}

// Result is what came of checking one scenario against its golden journal.
type Result struct {
	File    string // the scenario
	Golden  string // its golden journal
	Diff    string // a line diff, golden (-) against run (+), or "" when equal
	Updated bool   // the golden journal was (re)written
	Err     error  // the scenario did not load or run, or the golden is unreadable
}

// Passed reports whether the scenario ran and matched (or was updated).
func (r Result) Passed() bool { return r.Err == nil && (r.Diff == "" || r.Updated) }

// Check runs the scenario at path and compares its journal with the golden
// one; with update, it writes the golden journal instead when they differ
// (or when there is none).
func Check(ctx context.Context, path string, update bool) Result {
	res := Result{File: path, Golden: GoldenPath(path)}
	s, err := Load(path)
	if err != nil {
		res.Err = err
		return res
	}
	ops, err := Run(ctx, s)
	if err != nil {
		res.Err = err
		return res
	}
	got, err := Journal(ops)
	if err != nil {
		res.Err = err
		return res
	}
	want, err := regularfile.Read(res.Golden, MaxGoldenBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !update:
		res.Err = fmt.Errorf("no golden journal %s; create it with -update", res.Golden)
		return res
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		res.Err = err
		return res
	}
	if bytes.Equal(got, want) {
		return res
	}
	res.Diff = Diff(string(want), string(got))
	if update {
		if err := os.WriteFile(res.Golden, got, 0o644); err != nil {
			res.Err = err
			return res
		}
		res.Updated = true
	}
	return res
}

// Find returns the scenarios (*.yaml) in each directory, not descending,
// or the file itself for an argument that is a file; those whose name does
// not match run (nil for all) are left out. The result is sorted.
func Find(paths []string, run *regexp.Regexp) ([]string, error) {
	var out []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		files := []string{p}
		if info.IsDir() {
			files, err = filepath.Glob(filepath.Join(p, "*.yaml"))
			if err != nil {
				return nil, err
			}
		}
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".yaml")
			if run == nil || run.MatchString(name) {
				out = append(out, f)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Diff returns a line diff of want against got: hunks of lines only in
// want (-) and only in got (+), with two lines of context (' ') and the
// 1-based line numbers in each.
func Diff(want, got string) string {
	a, b := splitLines(want), splitLines(got)
	// The common head and tail are matched as they are, so that the table
	// below covers only the part that differs.
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	var lines []diffLine
	for k := 0; k < pre; k++ {
		lines = append(lines, diffLine{' ', a[k], k + 1, k + 1})
	}
	am, bm := a[pre:len(a)-suf], b[pre:len(b)-suf]
	lines = append(lines, diffMiddle(am, bm, pre)...)
	for k := 0; k < suf; k++ {
		i, j := len(a)-suf+k, len(b)-suf+k
		lines = append(lines, diffLine{' ', a[i], i + 1, j + 1})
	}
	return render(lines)
}

// diffLine is one line of a diff: ' ' in both, '-' only in want, '+' only in got.
type diffLine struct {
	op   byte
	text string
	ai   int // 1-based line in want, 0 if none
	bi   int
}

// diffMiddle diffs a and b, which start after line offset of both texts,
// by longest common subsequence.
func diffMiddle(a, b []string, offset int) []diffLine {
	// lcs[i][j] is the length of the longest common subsequence of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var lines []diffLine
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			lines = append(lines, diffLine{' ', a[i], offset + i + 1, offset + j + 1})
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			lines = append(lines, diffLine{'-', a[i], offset + i + 1, 0})
			i++
		default:
			lines = append(lines, diffLine{'+', b[j], 0, offset + j + 1})
			j++
		}
	}
	return lines
}

// render prints the changed lines of a diff with two lines of context
// around each, and "..." where lines are left out.
func render(lines []diffLine) string {
	const context = 2
	show := make([]bool, len(lines))
	for k, l := range lines {
		if l.op != ' ' {
			for c := max(k-context, 0); c <= min(k+context, len(lines)-1); c++ {
				show[c] = true
			}
		}
	}
	var sb strings.Builder
	prev := -1
	for k, l := range lines {
		if !show[k] {
			continue
		}
		if prev >= 0 && k > prev+1 {
			sb.WriteString("  ...\n")
		}
		prev = k
		switch l.op {
		case '-':
			fmt.Fprintf(&sb, "- %s    (golden line %d)\n", l.text, l.ai)
		case '+':
			fmt.Fprintf(&sb, "+ %s    (run line %d)\n", l.text, l.bi)
		default:
			fmt.Fprintf(&sb, "  %s\n", l.text)
		}
	}
	return sb.String()
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
