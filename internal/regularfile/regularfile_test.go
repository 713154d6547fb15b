//go:build unix

package regularfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aion-dispatch/dispatch/internal/regularfile"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{file, link} {
		got, err := regularfile.Read(path, 11)
		if err != nil || string(got) != "version: 1\n" {
			t.Errorf("Read(%s, 11) = %q, %v; want the content", path, got, err)
		}
	}

	_, err := regularfile.Read(file, 10)
	if !errors.Is(err, regularfile.ErrTooLarge) {
		t.Fatalf("Read over the limit: err = %v, want ErrTooLarge", err)
	}
	if want := "read " + file + ": is 11 bytes; the limit is 10"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

// A file whose size does not say how much it holds (as in /proc) is still
// read no further than the limit.
func TestReadStopsAtTheLimitWhateverTheSize(t *testing.T) {
	const proc = "/proc/self/status"
	if info, err := os.Stat(proc); err != nil || info.Size() != 0 {
		t.Skip("no /proc file that reports size 0 here")
	}
	_, err := regularfile.Read(proc, 10)
	var se *regularfile.SizeError
	if !errors.As(err, &se) || se.Size != -1 {
		t.Fatalf("err = %v, want a SizeError with an unknown size", err)
	}
	if !strings.Contains(err.Error(), "is over the limit of 10 bytes") {
		t.Errorf("err = %q", err)
	}
}

func TestSpecialFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		path string
		kind string
	}{
		"directory":        {dir, "is a directory, not a regular file"},
		"character device": {os.DevNull, "is a character device, not a regular file"},
	}
	// A named pipe without a writer: opening it for reading the usual way
	// would block for good.
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	cases["named pipe"] = struct {
		path string
		kind string
	}{fifo, "is a named pipe, not a regular file"}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			for op, call := range map[string]func() error{
				"Read": func() error { _, err := regularfile.Read(c.path, 1<<20); return err },
				"Open": func() error { f, err := regularfile.Open(c.path); closeIf(f); return err },
				"OpenFile": func() error {
					f, err := regularfile.OpenFile(c.path, os.O_RDWR|os.O_CREATE, 0o644)
					closeIf(f)
					return err
				},
			} {
				err := call()
				if !errors.Is(err, regularfile.ErrNotRegular) {
					t.Fatalf("%s: err = %v, want ErrNotRegular", op, err)
				}
				var pe *fs.PathError
				if !errors.As(err, &pe) || pe.Path != c.path || pe.Err.Error() != c.kind {
					t.Errorf("%s: err = %q, want a PathError on %s saying %q", op, err, c.path, c.kind)
				}
			}
		})
	}
}

func TestOpenFileCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	f, err := regularfile.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("x\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := regularfile.Read(path, 2); err != nil || string(got) != "x\n" {
		t.Errorf("read back %q, %v", got, err)
	}
	if _, err := regularfile.Open(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want ErrNotExist", err)
	}
}

func closeIf(f *os.File) {
	if f != nil {
		f.Close()
	}
}
