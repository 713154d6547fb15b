package journal_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/regularfile"
	"github.com/aion-dispatch/dispatch/journal"
)

const journalLine = `{"seq":1,"time":"2026-11-25T20:00:00Z","kind":"message_sent","conversation_id":"c1"}` + "\n"

// TestOpenRefusesWhatIsNotAJournal: a file that holds anything but a
// journal is left exactly as it was.
func TestOpenRefusesWhatIsNotAJournal(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"a config", "version: 1\nchannels:\n  - namespace: prod\n    task_queue: email", "line 1 is not a journal line"},
		{"a config ending with a newline", "version: 1\nchannels: []\n", "line 1 is not a journal line"},
		{"one line of text", "hello", "one line without a newline that is not a journal line"},
		{"binary", "\x00\x01\x02\xff\xfe\n\x89PNG\r\n\x1a\n", "line 1 is not a journal line"},
		{"JSON lines of something else", `{"a":1}` + "\n" + `{"b":2}` + "\n", "line 1 is not a journal line"},
		{"journal lines without a seq", `{"kind":"message_sent","conversation_id":"c1"}` + "\n", "line 1 has no seq"},
		{"a journal with text after it", journalLine + "notes: done\n", "its last complete line is not a journal line"},
		{"a journal with text after it, no newline", journalLine + "notes: done", "its last line is incomplete and not the start of a journal line"},
		{"an empty first line", "\n" + journalLine, "line 1 is not a journal line"},
		{"a journal, then text that starts as a line does", journalLine + `{"seq":2 is what I wrote`, "its last line is incomplete and not the start of a journal line"},
		{"one line that starts as a journal line and is not JSON", `{"seq":1 and so on`, "one line without a newline that is not a journal line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "d.yaml")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			w, _, err := journal.Open(path, journal.Options{})
			if err == nil {
				w.Close()
				t.Fatal("opened as a journal")
			}
			if !errors.Is(err, journal.ErrNotJournal) || !strings.Contains(err.Error(), tc.want) ||
				!strings.HasPrefix(err.Error(), "journal "+path+": not a journal: ") {
				t.Errorf("err = %q; want ErrNotJournal naming the file and saying %q", err, tc.want)
			}
			if got, _ := os.ReadFile(path); string(got) != tc.content {
				t.Errorf("the file changed:\n%q\nwas\n%q", got, tc.content)
			}
		})
	}
}

// TestOpenCutsOnlyATornTail: recovery removes an incomplete last line of a
// journal, and says how many bytes it removed, also when that line is the
// journal's first.
func TestOpenCutsOnlyATornTail(t *testing.T) {
	for _, tc := range []struct {
		name, content, torn string
	}{
		{"after whole lines", journalLine, `{"seq":2,"time":"2026-11-25T20:00:00Z","ki`},
		{"the first line", "", `{"seq":1,"ti`},
		{"the first line, cut in its first bytes", "", `{"se`},
		{"zero bytes where a write did not reach the disk", journalLine, "\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"a line cut short, then zero bytes", journalLine, `{"seq":2,"time":"2026` + "\x00\x00\x00\x00"},
		{"only zero bytes", "", "\x00\x00\x00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.jsonl")
			if err := os.WriteFile(path, []byte(tc.content+tc.torn), 0o644); err != nil {
				t.Fatal(err)
			}
			w, recovered, err := journal.Open(path, journal.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("dropped a truncated last line of %d bytes", len(tc.torn)); recovered != want {
				t.Errorf("recovered = %q, want %q", recovered, want)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); string(got) != tc.content {
				t.Errorf("after recovery the file holds %q, want %q", got, tc.content)
			}
		})
	}
}

// TestOpenRefusesSpecialFiles: one clear error at open, not a failure per
// dispatch.
func TestOpenRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		os.DevNull: "journal /dev/null: is a character device, not a regular file",
		fifo:       "journal " + fifo + ": is a named pipe, not a regular file",
		dir:        "journal " + dir + ": is a directory, not a regular file",
	} {
		w, _, err := journal.Open(path, journal.Options{})
		if err == nil {
			w.Close()
			t.Errorf("%s: opened", path)
			continue
		}
		if !errors.Is(err, regularfile.ErrNotRegular) || err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
	}
}

// TestOpenLocksTheJournal: a second writer of the same file, in this process
// or another, is refused at once; the lock goes with Close, and with the
// process that held it when it is killed.
func TestOpenLocksTheJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	w, _, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	record := func(w *journal.Writer) {
		t.Helper()
		if err := w.Record(context.Background(), engine.Operation{Kind: engine.OpMessageSent, ConversationID: "c1"}); err != nil {
			t.Fatal(err)
		}
	}
	record(w)
	w2, _, err := journal.Open(path, journal.Options{})
	if err == nil {
		w2.Close()
		t.Fatal("a second Open in the same process succeeded")
	}
	if !errors.Is(err, journal.ErrLocked) || !strings.HasPrefix(err.Error(), "journal "+path+": held by another writer") {
		t.Fatalf("second Open: err = %q, want ErrLocked naming the file", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// Another process holds it until it is killed.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldJournal$")
	cmd.Env = append(os.Environ(), "JOURNAL_TO_HOLD="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	if w, _, err := journal.Open(path, journal.Options{}); !errors.Is(err, journal.ErrLocked) {
		if err == nil {
			w.Close()
		}
		t.Fatalf("Open while another process holds it: err = %v, want ErrLocked", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	w, _, err = journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	record(w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHoldJournal is the process TestOpenLocksTheJournal starts: it opens
// the journal, says so, and holds it until it is killed.
func TestHoldJournal(t *testing.T) {
	path := os.Getenv("JOURNAL_TO_HOLD")
	if path == "" {
		t.Skip("run by TestOpenLocksTheJournal")
	}
	w, _, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fmt.Println("holding")
	select {} // until killed
}
