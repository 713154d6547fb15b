package command

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// Defaults of [Program]'s zero fields.
const (
	DefaultKillGrace  = 5 * time.Second
	DefaultStderrTail = 4 << 10
)

// Program says which program to run and how to end it.
type Program struct {
	// Path is the program: a path, or a name looked up in PATH. Required.
	Path string
	// Args are its arguments, not including the program name. No shell
	// reads them: each is one argument as written.
	Args []string
	// Dir is its working directory; "" is the caller's.
	Dir string
	// Env is added to the caller's environment (KEY=VALUE each; a later
	// entry wins over an earlier one and over the caller's); the DISPATCH_*
	// variables of an activity win over both.
	Env []string
	// KillGrace is how long a program has between SIGTERM and SIGKILL
	// when it is stopped; 0 means [DefaultKillGrace].
	KillGrace time.Duration
	// StderrTail is how many of the last bytes of the program's stderr a
	// failure message carries; 0 means [DefaultStderrTail].
	StderrTail int
	// Stderr, if not nil, also receives everything the program writes to
	// its stderr (from one goroutine at a time). A Stderr that blocks
	// blocks the program.
	Stderr io.Writer
}

// name is how messages name the program.
func (p *Program) name() string { return p.Path }

func (p *Program) killGrace() time.Duration {
	if p.KillGrace > 0 {
		return p.KillGrace
	}
	return DefaultKillGrace
}

func (p *Program) stderrTail() int {
	if p.StderrTail > 0 {
		return p.StderrTail
	}
	return DefaultStderrTail
}

func (p *Program) validate() error {
	switch {
	case p.Path == "":
		return errors.New("command: no program path")
	case p.KillGrace < 0:
		return fmt.Errorf("program %s: kill grace %v is negative", p.Path, p.KillGrace)
	case p.StderrTail < 0:
		return fmt.Errorf("program %s: stderr tail %d is negative", p.Path, p.StderrTail)
	}
	if _, err := exec.LookPath(p.Path); err != nil {
		return fmt.Errorf("program %s: %w", p.Path, err)
	}
	return nil
}

// process is one running instance of a program with pipes on its stdin,
// stdout and stderr, in a process group of its own. Its owner reads and
// writes the pipes, calls wait once (in a goroutine that ends with the
// process) and closes the pipes when done.
type process struct {
	prog   *Program
	cmd    *exec.Cmd
	stdin  *os.File // the write end of the program's stdin
	stdout *os.File // the read end of its stdout
	stderr *os.File // the read end of its stderr
	tail   *tail    // the end of its stderr, filled by copyStderr

	exited chan struct{} // closed once wait has reaped the process
	state  *os.ProcessState
	err    error // from Wait, other than a non-zero exit

	sigMu  sync.Mutex
	signal string // the last signal sent to the group, for messages
}

// start starts prog with env added to its environment.
func start(prog *Program, env []string) (*process, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("program %s: stdin pipe: %w", prog.name(), err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		return nil, fmt.Errorf("program %s: stdout pipe: %w", prog.name(), err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, fmt.Errorf("program %s: stderr pipe: %w", prog.name(), err)
	}
	cmd := exec.Command(prog.Path, prog.Args...)
	cmd.Dir = prog.Dir
	cmd.Env = append(append(os.Environ(), prog.Env...), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = newProcessGroup()
	err = cmd.Start()
	closeAll(inR, outW, errW) // the child's ends: the child has its own copies
	if err != nil {
		closeAll(inW, outR, errR)
		return nil, fmt.Errorf("start program %s: %w", prog.name(), err)
	}
	return &process{
		prog: prog, cmd: cmd,
		stdin: inW, stdout: outR, stderr: errR,
		tail:   newTail(prog.stderrTail()),
		exited: make(chan struct{}),
	}, nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// wait reaps the process and closes p.exited; its caller runs it in a
// goroutine of its own, once.
func (p *process) wait() {
	err := p.cmd.Wait()
	p.state = p.cmd.ProcessState
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		p.err = err
	}
	close(p.exited)
}

// hasExited reports whether the process has been reaped.
func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// signalGroup sends sig to the program's process group.
//
// After the program itself has been reaped its pid could in theory be
// reused, but not while anything of its group lives (a pid stays in use as
// long as a group of that id exists), and a signal to a group that is gone
// fails with ESRCH, which is ignored.
func (p *process) signalGroup(sig syscall.Signal, name string) {
	p.sigMu.Lock()
	p.signal = name
	p.sigMu.Unlock()
	_ = killGroup(p.cmd.Process.Pid, sig)
}

// lastSignal returns the name of the last signal sent to the group, or "".
func (p *process) lastSignal() string {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	return p.signal
}

// terminate ends the program: SIGTERM to its group, and SIGKILL when it
// has not exited after the grace. It returns once it has been reaped (the
// goroutine running wait must be running).
func (p *process) terminate() {
	if p.hasExited() {
		return
	}
	p.signalGroup(syscall.SIGTERM, "SIGTERM")
	t := time.NewTimer(p.prog.killGrace())
	defer t.Stop()
	select {
	case <-p.exited:
		return
	case <-t.C:
	}
	p.signalGroup(syscall.SIGKILL, "SIGKILL")
	<-p.exited
}

// killLeftovers kills whatever is left in the program's group once the
// program has exited: a child it started in the background, which would
// otherwise hold its pipes open.
func (p *process) killLeftovers() { _ = killGroup(p.cmd.Process.Pid, syscall.SIGKILL) }

// drain waits for the goroutines reading stdout and stderr (each closes
// one of done when it returns), closing the read ends if they have not seen EOF a
// grace after the program exited (a process that left the group, or a
// stubborn one, may still hold the write ends).
func (p *process) drain(done ...<-chan struct{}) {
	t := time.NewTimer(p.prog.killGrace())
	defer t.Stop()
	for _, d := range done {
		select {
		case <-d:
		case <-t.C:
			closeAll(p.stdout, p.stderr)
			for _, d := range done {
				<-d
			}
			closeAll(p.stdin)
			return
		}
	}
	closeAll(p.stdout, p.stderr, p.stdin)
}

// copyStderr reads the program's stderr into its tail, and its Stderr
// writer if any, until EOF or the pipe is closed.
func (p *process) copyStderr() {
	var w io.Writer = p.tail
	if p.prog.Stderr != nil {
		w = io.MultiWriter(p.tail, errorless{p.prog.Stderr})
	}
	_, _ = io.Copy(w, p.stderr)
}

// errorless hides a writer's errors, so that a failing Stderr does not stop
// the copy into the tail.
type errorless struct{ w io.Writer }

func (e errorless) Write(b []byte) (int, error) {
	_, _ = e.w.Write(b)
	return len(b), nil
}

// describeExit says how the program ended, e.g. "exited with status 3" or
// "was killed by SIGKILL". Call it once p.exited is closed.
func (p *process) describeExit() string {
	if p.err != nil {
		return fmt.Sprintf("could not be waited for: %v", p.err)
	}
	return describeState(p.state)
}

// failure is the message of an activity the program failed: what happened,
// then the tail of its stderr.
func (p *process) failure(what string) string {
	msg := fmt.Sprintf("program %s %s", p.prog.name(), what)
	if t := p.tail.String(); t != "" {
		return msg + ": " + t
	}
	return msg + " (nothing on stderr)"
}

// tail keeps the last bytes written to it.
type tail struct {
	mu        sync.Mutex
	buf       []byte // a ring of cap n once full
	n         int
	next      int // where the next byte goes once full
	truncated bool
}

func newTail(n int) *tail { return &tail{n: n} }

// Write keeps the last n bytes of everything written so far.
func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	written := len(b)
	if len(b) >= t.n {
		t.truncated = t.truncated || len(b) > t.n || len(t.buf) > 0
		t.buf = append(t.buf[:0], b[len(b)-t.n:]...)
		t.next = 0
		return written, nil
	}
	if room := t.n - len(t.buf); room > 0 {
		k := min(room, len(b))
		t.buf = append(t.buf, b[:k]...)
		b = b[k:]
	}
	for len(b) > 0 { // full: overwrite the oldest bytes
		t.truncated = true
		k := copy(t.buf[t.next:], b)
		b = b[k:]
		t.next = (t.next + k) % t.n
	}
	return written, nil
}

// String returns the kept bytes as valid UTF-8, trimmed of surrounding
// space, starting with "…" when older bytes were dropped (and without the
// remains of a character cut in two by the drop).
func (t *tail) String() string {
	t.mu.Lock()
	b := make([]byte, 0, len(t.buf))
	b = append(append(b, t.buf[t.next:]...), t.buf[:t.next]...)
	truncated := t.truncated
	t.mu.Unlock()
	if truncated {
		for i := 0; i < utf8.UTFMax-1 && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
			b = b[1:]
		}
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
	if truncated && s != "" {
		s = "…" + s
	}
	return s
}
