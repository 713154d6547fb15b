package main

import (
	"flag"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

var updateScripts = flag.Bool("update", false, "rewrite the expected output in testdata/script from the runs (cmp with a file in the archive)")

// TestMain makes this test binary also the dispatch command of the scripts
// and of the worker tests, and the program those tests' workers run.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"dispatch": main, testProgramName: testProgram})
}

// TestScripts runs the end-to-end CLI scripts in testdata/script: every
// subcommand's happy path, --help, exit codes and error messages. $REPO is
// the repository, for the shipped scripts the docs' examples use.
func TestScripts(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{Dir: "testdata/script", UpdateScripts: *updateScripts,
		Setup: func(e *testscript.Env) error { e.Setenv("REPO", repo); return nil }})
}
