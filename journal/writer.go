// Package journal writes dispatch operations as JSON lines, reads them back,
// checks that a journal tells a consistent story, and replays it: the
// recorded outcomes answer the engine's replay questions, so a workflow can
// be re-run without touching a worker.
//
// The line format is engine.Operation's JSON form (docs/journal.md).
package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
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
	// synced.
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
}

// bufferLimit is how much FsyncNever buffers before a Record writes.
const bufferLimit = 256 << 10

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

	mu       sync.Mutex
	cond     *sync.Cond
	seq      uint64
	pending  []byte // lines not yet written
	spare    []byte // the other buffer, reused
	batch    uint64 // id of the batch pending collects
	written  uint64 // batches below this id are written (and synced, as the setting says)
	flushing bool   // a Record or the ticker is writing a batch
	err      error  // the first write or sync error; every later Record fails with it
	closed   bool

	stop     chan struct{} // ends the ticker
	done     chan struct{}
	stopOnce sync.Once
}

// Open opens (creating it if needed) the journal at path for appending. A
// torn last line left by a crash is cut off first, so that new lines start
// on a line of their own; recovered says what was cut, or is "". The seq
// continues from the last line in the file.
func Open(path string, opts Options) (w *Writer, recovered string, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, "", fmt.Errorf("journal: %w", err)
	}
	last, end, recovered, err := scanTail(f)
	if err == nil && recovered != "" {
		err = f.Truncate(end)
	}
	if err == nil {
		_, err = f.Seek(end, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("journal %s: %w", path, err)
	}
	w = NewWriter(f, opts)
	w.seq = last
	return w, recovered, nil
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
	w := &Writer{out: out, opts: opts}
	w.cond = sync.NewCond(&w.mu)
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go w.tick()
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
// closed, and a replay treats it as unfinished.
//
// An error is sticky: after a failed write the journal accepts nothing
// more, and the next Record (at the latest the close of the conversation)
// returns it.
func (w *Writer) Record(ctx context.Context, op engine.Operation) error {
	op.Seq, op.Time = 0, time.Time{}
	bp := encodeBuffers.Get().(*[]byte)
	defer encodeBuffers.Put(bp)
	body, err := op.AppendJSON((*bp)[:0]) // outside the lock: concurrent Records encode in parallel
	*bp = body[:0]
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.err != nil:
		return w.err
	case w.closed:
		return errors.New("journal: closed")
	}
	w.seq++
	w.pending = appendLine(w.pending, w.seq, w.opts.Now(), body)
	mine := w.batch
	if w.opts.Fsync == FsyncNever || op.Kind != engine.OpConversationClosed {
		if len(w.pending) >= bufferLimit && !w.flushing {
			w.flushLocked(false)
		}
		return w.err
	}
	w.waitLocked(mine, w.opts.Fsync == FsyncBatch)
	return w.err
}

// waitLocked returns once batch id is written: by this goroutine, if no
// other is writing, or by the one that is (group commit).
func (w *Writer) waitLocked(id uint64, sync bool) {
	for w.written <= id && w.err == nil {
		if w.flushing {
			w.cond.Wait()
			continue
		}
		w.flushLocked(sync)
	}
}

// flushLocked writes the pending batch, with w.mu held on entry and exit
// and released during the write.
func (w *Writer) flushLocked(sync bool) {
	w.flushing = true
	buf, id := w.pending, w.batch
	w.pending, w.batch = w.spare[:0], w.batch+1
	w.mu.Unlock()
	err := w.write(buf, sync)
	w.mu.Lock()
	w.spare = buf[:0]
	w.flushing = false
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("journal: %w", err)
	}
	w.written = id + 1
	w.cond.Broadcast()
}

func (w *Writer) write(buf []byte, sync bool) error {
	if len(buf) > 0 {
		if _, err := w.out.Write(buf); err != nil {
			return err
		}
	}
	if s, ok := w.out.(syncer); ok && sync {
		return s.Sync()
	}
	return nil
}

// tick writes what is buffered every interval until Close, and under
// FsyncInterval syncs it: steps of conversations still open reach the file
// even when no conversation closes for a while.
func (w *Writer) tick() {
	defer close(w.done)
	t := time.NewTicker(w.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		if !w.flushing && w.err == nil {
			w.flushLocked(w.opts.Fsync == FsyncInterval)
		}
		w.mu.Unlock()
	}
}

// Flush writes every buffered line and, unless the setting is FsyncNever,
// syncs.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waitLocked(w.batch, w.opts.Fsync != FsyncNever)
	return w.err
}

// Close flushes everything, stops the ticker and closes the output. Records
// after Close fail.
func (w *Writer) Close() error {
	w.stopOnce.Do(func() {
		close(w.stop)
		<-w.done
	})
	err := w.Flush()
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if c, ok := w.out.(io.Closer); ok && !already {
		err = errors.Join(err, c.Close())
	}
	return err
}

// appendLine writes {"seq":N,"time":"T", followed by body without its "{".
func appendLine(dst []byte, seq uint64, t time.Time, body []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"time":"`...)
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `",`...)
	dst = append(dst, body[1:]...)
	return append(dst, '\n')
}

// scanTail finds, in a journal file, the seq of its last complete line and
// where that line ends. A last line without a newline that does not parse
// is a torn write: end excludes it and recovered describes it.
func scanTail(f *os.File) (lastSeq uint64, end int64, recovered string, err error) {
	info, err := f.Stat()
	if err != nil {
		return 0, 0, "", err
	}
	size := info.Size()
	if size == 0 {
		return 0, 0, "", nil
	}
	const window = 1 << 20
	start := max(size-window, 0)
	buf := make([]byte, size-start)
	if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, "", err
	}
	end = size
	if buf[len(buf)-1] != '\n' {
		cut := bytes.LastIndexByte(buf, '\n') + 1 // start of the last line
		var op engine.Operation
		if json.Unmarshal(buf[cut:], &op) != nil {
			recovered = fmt.Sprintf("dropped a truncated last line of %d bytes", len(buf)-cut)
			end = start + int64(cut)
			buf = buf[:cut]
		}
	}
	lines := bytes.Split(bytes.TrimRight(buf, "\n"), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		var op engine.Operation
		if json.Unmarshal(lines[i], &op) == nil {
			return op.Seq, end, recovered, nil
		}
	}
	if start > 0 {
		return 0, 0, "", fmt.Errorf("no complete line in the last %d bytes", window)
	}
	return 0, end, recovered, nil
}
