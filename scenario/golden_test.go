package scenario_test

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// address matches what a memory address looks like in Go's and
// gopher-lua's renderings ("table: 0x13eb273270e0", %p, %v of a pointer).
var address = regexp.MustCompile(`0x[0-9a-f]{6,}`)

// TestGoldensHaveNoAddresses reads every file under every testdata
// directory of the module (golden journals, CLI scripts and their expected
// output; not fuzz corpora, which are inputs): none may hold a memory
// address, which would differ on the next run.
func TestGoldensHaveNoAddresses(t *testing.T) {
	files := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "fuzz":
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !inTestdata(path) {
			return nil
		}
		files++
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for line := 1; sc.Scan(); line++ {
			if a := address.Find(sc.Bytes()); a != nil {
				t.Errorf("%s:%d: a memory address, %s", path, line, a)
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 30 {
		t.Fatalf("read %d files under testdata directories, want the goldens and CLI scripts (30 or more)", files)
	}
}

// inTestdata reports whether path lies under a directory named testdata.
func inTestdata(path string) bool {
	for dir := filepath.Dir(path); dir != "." && dir != ".." && dir != string(filepath.Separator); dir = filepath.Dir(dir) {
		if filepath.Base(dir) == "testdata" {
			return true
		}
	}
	return false
}
