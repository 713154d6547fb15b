//go:build linux

package command_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// guard bounds every wait of a test, only so that a hang fails rather than
// blocks; nothing waits for it to pass.
const guard = 10 * time.Second

// self is the test binary, run as the helper program.
func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// helperEnviron is the environment that makes the test binary the helper
// mode. The race detector's pause at exit is turned off: it would hold each
// helper's exit a second.
func helperEnviron(mode string) []string {
	return []string{"COMMAND_TEST_HELPER=" + mode, "GORACE=atexit_sleep_ms=0"}
}

// readyPipe is a FIFO a helper writes its pids to once it is set up: the
// test reads them to know, without sleeping, that the helper is running.
type readyPipe struct {
	path string
	f    *os.File
	r    *bufio.Reader
}

func newReady(t *testing.T) *readyPipe {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ready")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// Opened for reading and writing, so that the open does not block and
	// the helper's open for writing does not either.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return &readyPipe{path: path, f: f, r: bufio.NewReader(f)}
}

// env is the helper's environment entry naming the FIFO.
func (p *readyPipe) env() string { return "COMMAND_TEST_READY=" + p.path }

// pids reads n pids.
func (p *readyPipe) pids(t *testing.T, n int) []int {
	t.Helper()
	if err := p.f.SetReadDeadline(time.Now().Add(guard)); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for range n {
		line, err := p.r.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for the helper to be ready: %v", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
		// When the code under test fails to, the test kills what it
		// started, so that a failing test leaves nothing running.
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	}
	return pids
}

// gone waits until pid has exited (it is a zombie or reaped) and reports
// whether it did within the guard. It waits on a pidfd, which becomes
// readable when the process exits: a grandchild that was sent SIGKILL may
// take a moment to die, and is not ours to wait for.
func gone(pid int) bool {
	const sysPidfdOpen = 434 // the same on every Linux architecture
	fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if errno == syscall.ESRCH {
		return true
	}
	if errno != 0 {
		return syscall.Kill(pid, 0) == syscall.ESRCH
	}
	defer syscall.Close(int(fd))
	var set syscall.FdSet
	set.Bits[fd/64] |= 1 << (fd % 64)
	tv := syscall.NsecToTimeval(guard.Nanoseconds())
	n, err := syscall.Select(int(fd)+1, &set, nil, nil, &tv)
	return err == nil && n == 1
}

// exists reports whether pid exists at all, zombie or not.
func exists(pid int) bool { return syscall.Kill(pid, 0) == nil }

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(ents)
}

// deadlineCtx is a context whose deadline the test makes pass: Done closes
// when expire is called, and Err is then context.DeadlineExceeded.
type deadlineCtx struct {
	context.Context
	done chan struct{}
}

func newDeadlineCtx() (*deadlineCtx, func()) {
	c := &deadlineCtx{Context: context.Background(), done: make(chan struct{})}
	return c, func() { close(c.done) }
}

func (c *deadlineCtx) Done() <-chan struct{} { return c.done }

func (c *deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// within runs f in a goroutine and returns its result, failing the test if
// it takes longer than the guard.
func within[T any](t *testing.T, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatal("hung")
		panic("unreachable")
	}
}
