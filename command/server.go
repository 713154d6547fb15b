package command

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// Defaults of [ServerOptions]' zero fields.
const (
	DefaultMaxLine           = 8 << 20
	DefaultRestartBackoff    = 100 * time.Millisecond
	DefaultMaxRestartBackoff = 10 * time.Second
)

// ErrClosed is wrapped by the error of [Server.Handle] once the server is
// shut down.
var ErrClosed = errors.New("server is shut down")

// ServerOptions configures a [Server].
type ServerOptions struct {
	Program
	// MaxInFlight is how many activities the program is sent at once; a
	// Handle beyond waits for one to end. 0 means 1.
	MaxInFlight int
	// MaxLine bounds a response line, in bytes; a longer line is refused.
	// 0 means [DefaultMaxLine].
	MaxLine int
	// RestartBackoff is the wait before starting the program again after
	// an instance exited without answering any activity; it doubles with
	// each such instance in a row, up to MaxRestartBackoff. 0 means
	// [DefaultRestartBackoff] and [DefaultMaxRestartBackoff].
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	// Logger receives the lines the server refuses and the program's
	// exits; nil discards them.
	Logger *slog.Logger
}

// Stats counts what a [Server] has seen.
type Stats struct {
	Starts  int // instances of the program started
	Exits   int // instances that exited (or could not start)
	Refused int // response lines refused: malformed, too long, or for no activity in flight
}

// Server keeps one instance of a program running and sends it activities
// as JSON lines (docs/workers.md): a request line per activity on its
// stdin, a response line per activity read from its stdout, several in
// flight at once, told apart by id.
//
// When the program exits, however it exits, every activity in flight fails
// with a message saying how it ended and the tail of its stderr; the next
// activity starts it again, after a backoff if the instance that exited
// answered nothing. A program that closes its stdout, or stops reading its
// stdin, is stopped as if it had exited.
//
// Its goroutines (four per running instance) end with the instance; call
// [Server.Shutdown] to end the last one.
type Server struct {
	opts    ServerOptions
	log     *slog.Logger
	sem     chan struct{} // a token per activity in flight
	closing chan struct{} // closed by Shutdown

	// Replaced in tests.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration, closing <-chan struct{}) error

	mu        sync.Mutex
	cur       *instance // the running (or dying) instance, or nil
	closed    bool
	nextID    uint64
	failures  int       // instances in a row that exited without answering
	notBefore time.Time // no start before this, while failures > 0
	gen       int       // counts exits and failed starts
	stats     Stats
}

// instance is one run of the program. Its fields under "mu" are guarded by
// the server's mu.
type instance struct {
	p          *process
	wake       chan struct{} // poked when queue grows
	stopWrite  chan struct{} // closed to stop the writer (and close stdin)
	stopOnce   sync.Once
	broken     chan struct{} // closed by the writer when a write fails
	stdoutDone chan struct{} // closed when the reader has seen EOF
	stderrDone chan struct{} // closed when the stderr copy has seen EOF
	writeDone  chan struct{} // closed when the writer has returned
	done       chan struct{} // closed when the instance is gone and its activities answered

	// mu
	pending  map[string]*call
	queue    []queued // lines not written yet
	dying    bool     // no new activity
	answered int      // activities answered
}

type queued struct {
	c    *call // nil for a cancel line
	line []byte
}

// call is one activity sent to an instance.
type call struct {
	id      string
	in      *instance
	written bool                       // its request line is written (mu)
	result  chan engine.ActivityResult // buffered; receives exactly one result
}

// StartServer checks opts and starts the program.
func StartServer(opts ServerOptions) (*Server, error) {
	if err := opts.Program.validate(); err != nil {
		return nil, err
	}
	switch {
	case opts.MaxInFlight < 0:
		return nil, fmt.Errorf("program %s: max in flight %d is negative", opts.Path, opts.MaxInFlight)
	case opts.MaxLine < 0:
		return nil, fmt.Errorf("program %s: max line %d is negative", opts.Path, opts.MaxLine)
	case opts.RestartBackoff < 0 || opts.MaxRestartBackoff < 0:
		return nil, fmt.Errorf("program %s: restart backoff is negative", opts.Path)
	}
	opts.MaxInFlight = max(opts.MaxInFlight, 1)
	if opts.MaxLine == 0 {
		opts.MaxLine = DefaultMaxLine
	}
	if opts.RestartBackoff == 0 {
		opts.RestartBackoff = DefaultRestartBackoff
	}
	if opts.MaxRestartBackoff == 0 {
		opts.MaxRestartBackoff = max(DefaultMaxRestartBackoff, opts.RestartBackoff)
	}
	opts.Args = slices.Clone(opts.Args)
	opts.Env = slices.Clone(opts.Env)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:    opts,
		log:     log.With("program", opts.Path),
		sem:     make(chan struct{}, opts.MaxInFlight),
		closing: make(chan struct{}),
		now:     time.Now,
		sleep:   sleep,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.startLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// sleep waits d, or until ctx ends or closing closes.
func sleep(ctx context.Context, d time.Duration, closing <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-closing:
		return ErrClosed
	}
}

// Stats returns the server's counts so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Handle sends one activity to the program and returns its answer.
//
// The activity fails when the program answers "failed", sends a malformed
// response for it, or exits before answering. When ctx ends first, Handle
// writes a cancel line for it (if its request line was written), fails it
// saying it timed out or was cancelled, and refuses a later answer; the
// program and the other activities carry on.
//
// The error is not nil only when the program could not be started again,
// or the server is shut down (it wraps [ErrClosed]); it names the program.
func (s *Server) Handle(ctx context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return s.notSent(ctx), nil
	case <-s.closing:
		return engine.ActivityResult{}, s.closedErr()
	}
	defer func() { <-s.sem }()

	var deadline time.Time
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	s.mu.Lock()
	s.nextID++
	id := strconv.FormatUint(s.nextID, 10)
	s.mu.Unlock()
	line, err := encodeRequest(id, req, deadline)
	if err != nil {
		return engine.ActivityResult{}, fmt.Errorf("program %s: encode request: %w", s.opts.Path, err)
	}

	waited := -1 // the gen whose backoff this call has waited out
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return engine.ActivityResult{}, s.closedErr()
		}
		if in := s.cur; in != nil {
			if !in.dying {
				c := in.send(id, line)
				s.mu.Unlock()
				return s.await(ctx, c), nil
			}
			s.mu.Unlock()
			select { // the dying instance answers its activities first
			case <-in.done:
				continue
			case <-ctx.Done():
				return s.notSent(ctx), nil
			case <-s.closing:
				return engine.ActivityResult{}, s.closedErr()
			}
		}
		if s.failures > 0 && waited != s.gen {
			if d := s.notBefore.Sub(s.now()); d > 0 {
				gen := s.gen
				s.mu.Unlock()
				switch err := s.sleep(ctx, d, s.closing); {
				case errors.Is(err, ErrClosed):
					return engine.ActivityResult{}, s.closedErr()
				case err != nil:
					return s.notSent(ctx), nil
				}
				waited = gen
				continue
			}
		}
		in, err := s.startLocked()
		if err != nil {
			s.mu.Unlock()
			return engine.ActivityResult{}, err
		}
		c := in.send(id, line)
		s.mu.Unlock()
		return s.await(ctx, c), nil
	}
}

func (s *Server) closedErr() error { return fmt.Errorf("program %s: %w", s.opts.Path, ErrClosed) }

// notSent is the result of an activity whose ctx ended before it was sent.
func (s *Server) notSent(ctx context.Context) engine.ActivityResult {
	return engine.Failed(fmt.Sprintf("program %s was not sent the activity: it %s", s.opts.Path, endedBy(ctx)))
}

// await waits for c's result or for ctx to end.
func (s *Server) await(ctx context.Context, c *call) engine.ActivityResult {
	select {
	case res := <-c.result:
		return res
	case <-ctx.Done():
	}
	s.mu.Lock()
	in := c.in
	if in.pending[c.id] != c {
		s.mu.Unlock()
		return <-c.result // answered as ctx ended: the answer is on its way
	}
	delete(in.pending, c.id)
	if c.written {
		in.enqueue(queued{line: encodeCancel(c.id)})
	} else {
		in.queue = slices.DeleteFunc(in.queue, func(q queued) bool { return q.c == c })
	}
	s.mu.Unlock()
	return engine.Failed(fmt.Sprintf("program %s: the activity %s", s.opts.Path, endedBy(ctx)))
}

// send registers an activity with in and queues its request line. mu held.
func (in *instance) send(id string, line []byte) *call {
	c := &call{id: id, in: in, result: make(chan engine.ActivityResult, 1)}
	in.pending[id] = c
	in.enqueue(queued{c: c, line: line})
	return c
}

// enqueue adds a line for the writer. mu held.
func (in *instance) enqueue(q queued) {
	in.queue = append(in.queue, q)
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// startLocked starts an instance of the program and makes it current. mu
// held.
func (s *Server) startLocked() (*instance, error) {
	p, err := start(&s.opts.Program, nil)
	if err != nil {
		s.stats.Exits++
		s.exitedLocked(false)
		return nil, err
	}
	s.stats.Starts++
	in := &instance{
		p:          p,
		wake:       make(chan struct{}, 1),
		stopWrite:  make(chan struct{}),
		broken:     make(chan struct{}),
		stdoutDone: make(chan struct{}),
		stderrDone: make(chan struct{}),
		writeDone:  make(chan struct{}),
		done:       make(chan struct{}),
		pending:    make(map[string]*call),
	}
	s.cur = in
	go p.wait()
	go s.write(in)
	go s.read(in)
	go func() { defer close(in.stderrDone); p.copyStderr() }()
	go s.supervise(in)
	return in, nil
}

// exitedLocked counts an exit, or a failed start, for the backoff. mu held.
func (s *Server) exitedLocked(answered bool) {
	s.gen++
	if answered {
		s.failures = 0
		return
	}
	s.failures++
	d := s.opts.RestartBackoff
	for i := 1; i < s.failures && d < s.opts.MaxRestartBackoff; i++ {
		d *= 2
	}
	s.notBefore = s.now().Add(min(d, s.opts.MaxRestartBackoff))
}

// write writes queued lines to the program's stdin, in order, until the
// instance stops writing and the queue is empty, or a write fails; it then
// closes stdin.
func (s *Server) write(in *instance) {
	defer close(in.writeDone)
	defer func() { _ = in.p.stdin.Close() }()
	for {
		s.mu.Lock()
		if len(in.queue) == 0 {
			s.mu.Unlock()
			select {
			case <-in.wake:
				continue
			case <-in.stopWrite:
				return
			}
		}
		// Told to stop, it still writes what is queued (a cancel line
		// above all), then closes stdin.
		q := in.queue[0]
		in.queue = in.queue[1:]
		if q.c != nil {
			q.c.written = true
		}
		s.mu.Unlock()
		if _, err := in.p.stdin.Write(q.line); err != nil {
			select {
			case <-in.stopWrite: // stdin was closed under it
				return
			default:
			}
			s.log.Warn("command: program stopped reading its stdin", "error", err)
			close(in.broken)
			return
		}
	}
}

// stopWriting stops the writer, which closes the program's stdin.
func (in *instance) stopWriting() { in.stopOnce.Do(func() { close(in.stopWrite) }) }

// read reads response lines from the program's stdout until EOF.
func (s *Server) read(in *instance) {
	defer close(in.stdoutDone)
	r := bufio.NewReaderSize(in.p.stdout, 64<<10)
	var line []byte
	long := false // the line so far is longer than MaxLine
	for {
		chunk, err := r.ReadSlice('\n')
		if !long && len(line)+len(chunk) > s.opts.MaxLine+1 { // +1: the newline
			long, line = true, line[:0]
		}
		if !long {
			line = append(line, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if long {
			s.refuse("", fmt.Errorf("a line longer than %d bytes", s.opts.MaxLine), nil)
		} else if len(bytes.TrimSpace(line)) > 0 {
			s.answer(in, line)
		}
		long, line = false, line[:0]
		if err != nil {
			return // EOF, or the pipe closed
		}
	}
}

// answer delivers one response line to its activity, or refuses it.
func (s *Server) answer(in *instance, line []byte) {
	id, res, err := parseResponse(line)
	s.mu.Lock()
	c := in.pending[id]
	if c != nil {
		delete(in.pending, id)
	}
	if err == nil && c != nil {
		in.answered++
	}
	s.mu.Unlock()
	switch {
	case err != nil:
		if c != nil {
			c.result <- engine.Failed(fmt.Sprintf("program %s sent a malformed response: %v", s.opts.Path, err))
		}
		s.refuse(id, err, line)
	case c == nil:
		s.refuse(id, errors.New("no activity in flight has this id (never sent, answered already, or cancelled)"), line)
	case res.Status == engine.StatusFailed && res.Error == "":
		c.result <- engine.Failed(fmt.Sprintf("program %s failed the activity without an error message", s.opts.Path))
	default:
		c.result <- res
	}
}

// refuse counts and logs a refused line.
func (s *Server) refuse(id string, err error, line []byte) {
	s.mu.Lock()
	s.stats.Refused++
	s.mu.Unlock()
	const show = 200
	text := string(line)
	if len(text) > show {
		text = text[:show] + "…"
	}
	s.log.Warn("command: refused a line from the program", "id", id, "reason", err, "line", text)
}

// supervise waits for the instance to end (the program exits, closes its
// stdout, or stops reading its stdin), then cleans up after it and fails
// the activities it did not answer.
func (s *Server) supervise(in *instance) {
	p := in.p
	var why string // why the server stopped the program, if it did
	select {
	case <-p.exited:
	case <-in.stdoutDone:
		why = "closed its stdout"
	case <-in.broken:
		why = "stopped reading its stdin"
	}
	s.mu.Lock()
	in.dying = true
	s.mu.Unlock()
	if why != "" {
		// A program that exits closes its stdout and stdin first: give it
		// the grace to exit by itself before stopping it.
		t := time.NewTimer(p.prog.killGrace())
		select {
		case <-p.exited:
			why = ""
		case <-t.C:
			p.terminate()
			why += "; " + stopped(p)
		}
		t.Stop()
	}
	p.killLeftovers()
	in.stopWriting()
	p.drain(in.stdoutDone, in.stderrDone)
	<-in.writeDone // stopped, or its write failed when drain closed stdin

	if why == "" {
		why = p.describeExit()
	}
	s.mu.Lock()
	pending := in.pending
	in.pending = nil
	in.queue = nil
	s.stats.Exits++
	s.exitedLocked(in.answered > 0)
	if s.cur == in {
		s.cur = nil
	}
	s.mu.Unlock()
	s.log.Info("command: program exited", "how", why, "in_flight", len(pending))
	if len(pending) > 0 {
		msg := p.failure(fmt.Sprintf("%s with %d activities in flight", why, len(pending)))
		for _, c := range pending {
			c.result <- engine.Failed(msg)
		}
	}
	close(in.done)
}

// Shutdown stops the program and waits until it is gone: it closes the
// program's stdin, so that a program that answers what it has and exits at
// EOF ends cleanly, and when ctx ends first sends SIGTERM to its process
// group, then SIGKILL after KillGrace. Activities it leaves unanswered
// fail; Handle refuses new ones with [ErrClosed]. The error is ctx's when
// the program had to be signalled.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	in := s.cur
	if in != nil {
		in.dying = true
	}
	s.mu.Unlock()
	if in == nil {
		return nil
	}
	in.stopWriting()
	var err error
	select {
	case <-in.p.exited:
	case <-ctx.Done():
		err = fmt.Errorf("program %s did not exit when its stdin closed: %w", s.opts.Path, ctx.Err())
		in.p.terminate()
	}
	<-in.done
	return err
}

// Close is Shutdown with KillGrace for the program to exit at EOF.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.killGrace())
	defer cancel()
	return s.Shutdown(ctx)
}
