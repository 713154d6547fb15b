// Package journal writes dispatch operations as JSON lines, reads them back,
// checks that a journal tells a consistent story, and replays it: the
// recorded outcomes answer the engine's replay questions, so a workflow can
// be re-run without touching a worker.
//
// The line format is engine.Operation's JSON form (docs/journal.md), which
// [AppendLine] writes and the readers read: engine keeps the types, this
// package their line codec.
package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/regularfile"
)

// Fsync says when the journal forces written lines to stable storage.
type Fsync int

// The durability settings.
const (
	// FsyncBatch: recording a conversation_closed returns once that line
	// and every line before it are written and synced, with the lines of
	// concurrent conversations in one write and one sync (group commit). The
	// default.
	FsyncBatch Fsync = iota
	// FsyncInterval: recording a conversation_closed returns once the lines
	// are written to the OS; a sync runs every Options.Interval.
	FsyncInterval
	// FsyncNever: Record returns once its line is buffered; buffers are
	// written when they fill, every Options.Interval and on Close, and never
	// synced. (Under every setting, a Record that finds 1 MiB waiting to be
	// written waits until it is.)
	FsyncNever
)

// ParseFsync reads "batch", "interval" or "never".
func ParseFsync(s string) (Fsync, error) {
	switch s {
	case "batch", "":
		return FsyncBatch, nil
	case "interval":
		return FsyncInterval, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, fmt.Errorf("fsync %q: want batch, interval or never", s)
}

// String returns the setting's name.
func (f Fsync) String() string {
	switch f {
	case FsyncInterval:
		return "interval"
	case FsyncNever:
		return "never"
	}
	return "batch"
}

// Options configure a Writer.
type Options struct {
	Fsync Fsync
	// Interval is the sync period of FsyncInterval and the write period of
	// FsyncNever. Default 100ms.
	Interval time.Duration
	// Now is the clock that stamps each line; default time.Now.
	Now func() time.Time
	// Observer, when set, is told of every write and sync the Writer's
	// flusher makes, for metrics. Nil: nothing is told.
	Observer Observer
}

// Observer is told what a Writer's flusher does to its output. Its methods
// are called from the flusher's goroutine, one call at a time, while the
// conversations waiting for that commit wait too: they must return quickly.
type Observer interface {
	// Wrote is called after each write of journal lines with the number of
	// bytes the output accepted, also when the write failed part way (if
	// it accepted any). The newline Open may add to end a file's last
	// complete line is not a write of the flusher, and is not told.
	Wrote(bytes int)
	// Synced is called after each sync of the output, successful or not,
	// with how long it took, measured on the monotonic clock (not
	// Options.Now).
	Synced(took time.Duration)
}

// bufferLimit is how much is buffered before the flusher is asked to write;
// pendingLimit is how much may wait for it, beyond which a Record waits until
// the buffer is written, so that a disk slower than the dispatches holds
// them back instead of the buffer growing without bound.
const (
	bufferLimit  = 256 << 10
	pendingLimit = 4 * bufferLimit
)

// encodeBuffers recycles the buffers operations are encoded into.
var encodeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// syncer is what a Writer's output offers for durability (an *os.File does).
type syncer interface{ Sync() error }

// Writer records operations as journal lines. It implements the Record half
// of engine.Recorder and is safe for concurrent use. Lines carry a seq that
// increases strictly in file order and a UTC time.
type Writer struct {
	out  io.Writer
	opts Options

	mu      sync.Mutex
	seq     uint64
	pending []byte  // lines not yet written
	spare   []byte  // the other buffer, reused
	cur     *commit // the commit pending will be part of
	clock   stamp   // formats the lines' times
	err     error   // the first write or sync error; every later Record fails with it
	closed  bool

	// A flusher goroutine writes: it takes all that is pending whenever a
	// closing conversation waits (kick), the buffer fills (kick) or the
	// interval passes, so the conversations that close while it syncs are
	// committed together by its next write and sync.
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	waitingForRoom func() // a test's hook: called when a Record waits for room
}

// commit is one write (and maybe sync) of the flusher; done is closed when
// it is over, so its waiters wake together without contending for a lock.
type commit struct {
	done chan struct{}
	sync bool  // a waiter needs it synced
	err  error // set before done is closed
}

func newCommit() *commit { return &commit{done: make(chan struct{})} }

// ErrNotJournal is matched (errors.Is) by Open's error for a file that
// holds something other than a journal: Open writes nothing to it.
var ErrNotJournal = errors.New("not a journal")

// ErrLocked is matched (errors.Is) by Open's error for a journal that
// another Writer holds, in this process or another.
var ErrLocked = errors.New("held by another writer")

// Open opens the journal at path for appending, creating it if needed, and
// takes the journal's lock: a journal has one writer at a time, and a
// second Open of the same file, by this process or another, fails at once
// with [ErrLocked] until the first is closed (or its process ends). The
// path must be a regular file: a directory, named pipe or device is
// refused.
//
// A non-empty file must be a journal: its first and last complete lines
// must be journal lines, or Open fails with [ErrNotJournal] before it
// writes or cuts anything. An incomplete last line that does not parse (a
// crash in the middle of a write) is cut off, so that new lines start on a
// line of their own; recovered says how many bytes were removed, or is "".
// The seq continues from the last line in the file.
func Open(path string, opts Options) (w *Writer, recovered string, err error) {
	f, err := regularfile.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is said below
		}
		return nil, "", fmt.Errorf("journal %s: %w", path, err)
	}
	last, torn, err := prepareTail(f)
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("journal %s: %w", path, err)
	}
	if torn > 0 {
		recovered = fmt.Sprintf("dropped a truncated last line of %d bytes", torn)
		if torn == 1 {
			recovered = "dropped a truncated last line of 1 byte"
		}
	}
	w = NewWriter(f, opts)
	w.seq = last
	return w, recovered, nil
}

// prepareTail locks f, checks that it holds a journal, cuts a torn last
// line and leaves the offset where the next line goes.
func prepareTail(f *os.File) (last uint64, torn int64, err error) {
	if err := lock(f); err != nil {
		return 0, 0, err
	}
	info, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size := info.Size()
	if size == 0 {
		return 0, 0, nil
	}
	if err := checkFirstLine(f, size); err != nil {
		return 0, 0, err
	}
	last, end, err := scanTail(f, size)
	if err != nil {
		return 0, 0, err
	}
	if end < size {
		if err := f.Truncate(end); err != nil {
			return 0, 0, err
		}
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		return 0, 0, err
	}
	if end > 0 {
		if err := terminateLine(f, end); err != nil {
			return 0, 0, err
		}
	}
	return last, size - end, nil
}

// linePrefix is how every line a Writer writes begins.
const linePrefix = `{"seq":`

// tornLine reports whether b, a last line without a newline that does not
// parse, is what a crash leaves of a line a Writer was writing: the start
// of one (`{"seq":`, and JSON as far as it goes), perhaps followed by the
// zero bytes a file system leaves where a write did not reach the disk, or
// zero bytes alone.
func tornLine(b []byte) bool {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return true
	}
	n := min(len(b), len(linePrefix))
	if string(b[:n]) != linePrefix[:n] {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		if _, err := dec.Token(); err != nil {
			return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		}
	}
}

// checkFirstLine makes sure the file starts as a journal does: with a
// journal line, or with the beginning of one that a crash cut short.
func checkFirstLine(f *os.File, size int64) error {
	r := NewReader(io.NewSectionReader(f, 0, size))
	op, err := r.Next()
	switch {
	case err == nil && op.Seq > 0:
		return nil
	case err == nil:
		return fmt.Errorf("%w: line 1 has no seq; refusing to write to it", ErrNotJournal)
	case errors.Is(err, io.EOF) && r.Truncated() == 1:
		// One incomplete line (the reader read it whole: it is under the
		// line limit): the first write, cut short?
		line := make([]byte, size)
		if _, err := f.ReadAt(line, 0); err != nil {
			return err
		}
		if tornLine(line) {
			return nil
		}
		return fmt.Errorf("%w: it holds one line without a newline that is not a journal line; refusing to write to it", ErrNotJournal)
	}
	var le *LineError
	if errors.As(err, &le) {
		return fmt.Errorf("%w: line 1 is not a journal line (%v); refusing to write to it", ErrNotJournal, le.Err)
	}
	return err
}

// NewWriter returns a Writer that appends to out, starting at seq 1. If out
// has a Sync method, it is used as the setting says; Close closes out if it
// is an io.Closer.
func NewWriter(out io.Writer, opts Options) *Writer {
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &Writer{out: out, opts: opts, cur: newCommit(), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// Record implements engine.Recorder's Record: it stamps op with the next
// seq and the time, and appends it.
//
// The steps of a conversation are buffered; the conversation_closed that
// ends it waits, under FsyncBatch, until it and everything before it are on
// stable storage (under FsyncInterval, until they are written). A dispatch
// therefore returns its result only once its story is durable, and pays
// for one sync, shared with every conversation closing at the same time,
// rather than one per step. A conversation cut short by a crash is never
// closed, and a replay treats it as unfinished. Whatever the setting, a
// Record that finds 1 MiB waiting to be written waits until it is, before
// it appends its line: a disk slower than the dispatches holds them back
// rather than filling memory. If ctx ends while it waits, the line is not
// recorded and Record returns ctx's error.
//
// An error is sticky: after a failed write the journal accepts nothing
// more, and the next Record (at the latest the close of the conversation)
// returns it.
func (w *Writer) Record(ctx context.Context, op engine.Operation) error {
	op.Seq, op.Time = 0, time.Time{}
	bp := encodeBuffers.Get().(*[]byte)
	defer encodeBuffers.Put(bp)
	body, err := AppendLine((*bp)[:0], op) // outside the lock: concurrent Records encode in parallel
	*bp = body[:0]
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if len(body)+lineOverhead > MaxLineBytes {
		return fmt.Errorf("journal: a %s line of %d bytes is over the %d a journal line may hold", op.Kind, len(body)+lineOverhead, MaxLineBytes)
	}
	w.mu.Lock()
	for {
		switch {
		case w.err != nil:
			w.mu.Unlock()
			return w.err
		case w.closed:
			w.mu.Unlock()
			return errors.New("journal: closed")
		}
		if len(w.pending) < pendingLimit {
			break
		}
		// No room: wait until the flusher has written what is pending. The
		// line is not appended if ctx ends first.
		c := w.cur
		w.mu.Unlock()
		w.signal()
		if w.waitingForRoom != nil {
			w.waitingForRoom()
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return fmt.Errorf("journal: %w", ctx.Err())
		}
		w.mu.Lock()
	}
	w.seq++
	w.pending = w.appendLine(w.pending, w.seq, w.opts.Now(), body)
	c := w.cur
	waits := w.opts.Fsync != FsyncNever && op.Kind == engine.OpConversationClosed
	if waits && w.opts.Fsync == FsyncBatch {
		c.sync = true
	}
	full := len(w.pending) >= bufferLimit
	w.mu.Unlock()
	if waits || full {
		w.signal()
	}
	if !waits {
		return nil
	}
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("journal: %w", ctx.Err())
	}
}

// signal asks the flusher to commit what is pending.
func (w *Writer) signal() {
	select {
	case w.kick <- struct{}{}:
	default: // a kick is already waiting
	}
}

// run is the flusher: it commits on kicks and ticks until Close.
func (w *Writer) run() {
	defer close(w.done)
	t := time.NewTicker(w.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			w.commit(w.opts.Fsync != FsyncNever)
			return
		case <-w.kick:
			w.commit(false)
		case <-t.C:
			w.commit(w.opts.Fsync == FsyncInterval)
		}
	}
}

// commit writes all that is pending, syncing it if asked or if a waiter of
// the commit needs it, and wakes the commit's waiters.
func (w *Writer) commit(sync bool) {
	w.mu.Lock()
	c, buf, failed := w.cur, w.pending, w.err
	w.pending, w.cur = w.spare[:0], newCommit()
	w.mu.Unlock()
	var err error
	if failed == nil && (len(buf) > 0 || sync || c.sync) {
		err = w.write(buf, sync || c.sync)
	}
	w.mu.Lock()
	w.spare = buf[:0]
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("journal: %w", err)
	}
	c.err = w.err
	w.mu.Unlock()
	close(c.done)
}

// write writes buf to the output and syncs it if asked, telling the
// Observer, if there is one.
func (w *Writer) write(buf []byte, sync bool) error {
	obs := w.opts.Observer
	if len(buf) > 0 {
		n, err := w.out.Write(buf)
		if obs != nil && n > 0 {
			obs.Wrote(n)
		}
		if err != nil {
			return err
		}
	}
	s, ok := w.out.(syncer)
	if !ok || !sync {
		return nil
	}
	if obs == nil {
		return s.Sync()
	}
	start := time.Now()
	err := s.Sync()
	obs.Synced(time.Since(start))
	return err
}

// Err returns the error that stopped the journal (a write or sync that
// failed: every later Record fails with it), or nil while it records. A
// node's readiness asks it.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Flush writes every buffered line and, unless the setting is FsyncNever,
// syncs.
func (w *Writer) Flush() error {
	w.mu.Lock()
	if w.closed {
		err := w.err
		w.mu.Unlock()
		if err != nil {
			return err
		}
		return errors.New("journal: closed")
	}
	c := w.cur
	c.sync = c.sync || w.opts.Fsync != FsyncNever
	w.mu.Unlock()
	w.signal()
	<-c.done
	return c.err
}

// Close flushes everything (syncing, unless the setting is FsyncNever),
// stops the flusher and closes the output. Records after Close fail, and so
// does one still waiting for room when Close is called (its line is not
// written): close a journal once the dispatches that record to it are done.
func (w *Writer) Close() error {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	w.stopOnce.Do(func() {
		close(w.stop)
		<-w.done
	})
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	if c, ok := w.out.(io.Closer); ok && !already {
		err = errors.Join(err, c.Close())
	}
	return err
}

// terminateLine makes sure the file ends with a newline at end, so that the
// next line does not join a complete last line written without one.
func terminateLine(f *os.File, end int64) error {
	var b [1]byte
	if _, err := f.ReadAt(b[:], end-1); err != nil {
		return err
	}
	if b[0] == '\n' {
		return nil
	}
	_, err := f.Write([]byte{'\n'})
	return err
}

// lineOverhead bounds what appendLine adds to a body: seq, time, newline.
const lineOverhead = len(`{"seq":18446744073709551615,"time":"2006-01-02T15:04:05.999999999Z",`) + 1

// appendLine writes {"seq":N,"time":"T", followed by body without its "{".
func (w *Writer) appendLine(dst []byte, seq uint64, t time.Time, body []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"time":"`...)
	dst = w.clock.append(dst, t)
	dst = append(dst, `",`...)
	dst = append(dst, body[1:]...)
	return append(dst, '\n')
}

// stamp writes times as time.RFC3339Nano does in UTC, reusing the date and
// clock of the second it wrote last: a line's time is written under the
// Writer's lock, and AppendFormat spends most of its time on the layout.
type stamp struct {
	sec    int64
	prefix []byte // "2006-01-02T15:04:05" of sec
}

func (s *stamp) append(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return t.AppendFormat(dst, time.RFC3339Nano)
	}
	if sec := t.Unix(); s.prefix == nil || sec != s.sec {
		s.prefix = t.AppendFormat(s.prefix[:0], "2006-01-02T15:04:05")
		s.sec = sec
	}
	dst = append(dst, s.prefix...)
	if ns := t.Nanosecond(); ns != 0 {
		frac := [10]byte{'.'}
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(frac)
		for frac[n-1] == '0' {
			n--
		}
		dst = append(dst, frac[:n]...)
	}
	return append(dst, 'Z')
}

// scanTail finds, in a journal file of size bytes, the seq of its last
// complete line and where that line ends. A last line without a newline
// that does not parse is a torn write: end excludes it. A last complete
// line that is not a journal line is ErrNotJournal. It reads the end of the
// file in growing windows, until one holds a whole line before the last: a
// line may be up to MaxLineBytes.
func scanTail(f *os.File, size int64) (lastSeq uint64, end int64, err error) {
	const maxWindow = 2*MaxLineBytes + 2 // a whole line and a torn one after it
	for window := int64(1 << 20); ; window = min(4*window, maxWindow) {
		start := max(size-window, 0)
		buf := make([]byte, size-start)
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, err
		}
		// Lines start after a newline, or where the file does.
		first := 0
		if start > 0 {
			first = bytes.IndexByte(buf, '\n') + 1
			if first == 0 {
				if window == maxWindow {
					return 0, 0, fmt.Errorf("%w: no line ends in the last %d bytes", ErrNotJournal, window)
				}
				continue
			}
		}
		lines := buf[first:]
		end = size
		if n := len(lines); n > 0 && lines[n-1] != '\n' {
			cut := bytes.LastIndexByte(lines, '\n') + 1 // start of the last line
			tail := lines[cut:]
			if _, err := parseLine(tail); err != nil {
				if !tornLine(tail) {
					return 0, 0, fmt.Errorf("%w: its last line is incomplete and not the start of a journal line; refusing to write to it", ErrNotJournal)
				}
				end = start + int64(first+cut)
				lines = lines[:cut]
			}
		}
		whole := bytes.TrimSuffix(lines, []byte("\n"))
		if len(whole) == 0 {
			if start == 0 {
				return 0, end, nil // only a torn first line
			}
			if window == maxWindow {
				return 0, 0, fmt.Errorf("%w: no complete line in the last %d bytes", ErrNotJournal, window)
			}
			continue
		}
		op, err := parseLine(whole[bytes.LastIndexByte(whole, '\n')+1:])
		if err != nil || op.Seq == 0 {
			if err == nil {
				err = errors.New("no seq")
			}
			return 0, 0, fmt.Errorf("%w: its last complete line is not a journal line (%v); refusing to write to it", ErrNotJournal, err)
		}
		return op.Seq, end, nil
	}
}
