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

	"github.com/rogpeppe/go-internal/diff"

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

// Result is what came of checking one scenario against its golden journal
// and its request steps' expectations.
type Result struct {
	File   string // the scenario
	Golden string // its golden journal, or "" for a scenario that has none and needs none
	Diff   string // a unified diff, golden (-) against run (+), or "" when equal
	// Changes are the same difference field by field (see [Changes]).
	Changes []string
	Updated bool // the golden journal was (re)written
	// Failures are the expectations the run did not meet, in the order of
	// the steps; -update does not change them.
	Failures []Failure
	Err      error // the scenario did not load or run, or the golden is unreadable
}

// Passed reports whether the scenario ran, met its expectations and
// matched its golden journal (or updated it).
func (r Result) Passed() bool {
	return r.Err == nil && len(r.Failures) == 0 && (r.Diff == "" || r.Updated)
}

// Check runs the scenario at path, checks its request steps'
// expectations and compares its journal with the golden one; with update,
// it writes the golden journal instead when they differ (or when there is
// none). A scenario with expectations and no golden journal is checked on
// its expectations alone (Golden is ""), and update writes none for it.
func Check(ctx context.Context, path string, update bool) Result {
	res := Result{File: path, Golden: GoldenPath(path)}
	s, err := Load(path)
	if err != nil {
		res.Err = err
		return res
	}
	ops, failures, err := run(ctx, s)
	if err != nil {
		res.Err = err
		return res
	}
	res.Failures = failures
	got, err := Journal(ops)
	if err != nil {
		res.Err = err
		return res
	}
	want, err := regularfile.Read(res.Golden, MaxGoldenBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist) && s.HasExpectations():
		res.Golden = ""
		return res
	case errors.Is(err, fs.ErrNotExist) && !update:
		res.Err = fmt.Errorf("no golden journal %s and no expect in its steps; create it with -update", res.Golden)
		return res
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		res.Err = err
		return res
	}
	missing := errors.Is(err, fs.ErrNotExist)
	if bytes.Equal(got, want) && !(missing && update) { // a run that recorded nothing still gets its golden
		return res
	}
	// A unified diff, from its ---/+++ lines: its first line ("diff A B")
	// says again what the caller's message about the failure says.
	_, d, _ := bytes.Cut(diff.Diff(res.Golden, want, "run", got), []byte("\n"))
	res.Diff = string(d)
	res.Changes = Changes(want, got)
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
