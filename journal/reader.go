package journal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/aion-dispatch/dispatch/engine"
)

// MaxLineBytes caps one journal line.
const MaxLineBytes = 16 << 20

// LineError is a problem at one line of a journal.
type LineError struct {
	Line int // 1-based
	Err  error
}

// Error implements error: "line N: problem".
func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the problem.
func (e *LineError) Unwrap() error { return e.Err }

// Reader streams the operations of a journal of any size, one line at a time.
type Reader struct {
	br        *bufio.Reader
	line      int
	truncated int   // the line number of a torn last line, or 0
	err       error // what stopped All, if not the end
}

// NewReader returns a Reader of the journal in r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10)}
}

// Line returns the line number of the operation Next returned last.
func (r *Reader) Line() int { return r.line }

// Truncated returns the line number of a torn last line (a crash in the
// middle of a write), which Next skipped, or 0. Read it after io.EOF.
func (r *Reader) Truncated() int { return r.truncated }

// Next returns the next operation, io.EOF at the end, or a *LineError for a
// line that cannot be read. A last line without a newline that does not
// parse is taken for a torn write: Next ends with io.EOF and Truncated
// reports it.
func (r *Reader) Next() (engine.Operation, error) {
	line, err := r.readLine()
	if err != nil {
		return engine.Operation{}, err
	}
	r.line++
	complete := len(line) > 0 && line[len(line)-1] == '\n'
	text := bytes.TrimRight(line, "\r\n")
	op, err := parseLine(text)
	if err != nil {
		if !complete {
			r.truncated = r.line
			return engine.Operation{}, io.EOF
		}
		if len(bytes.TrimSpace(text)) == 0 {
			err = errors.New("empty line")
		}
		return engine.Operation{}, &LineError{Line: r.line, Err: err}
	}
	return op, nil
}

// All returns an iterator over the operations of the journal and their
// lines, read one at a time as the loop asks for them. It stops at the end
// (after a torn last line, which Truncated then reports) or at the first
// line that cannot be read, which Err then returns.
func (r *Reader) All() iter.Seq2[int, engine.Operation] {
	return func(yield func(int, engine.Operation) bool) {
		for {
			op, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					r.err = err
				}
				return
			}
			if !yield(r.line, op) {
				return
			}
		}
	}
}

// Err returns the error that stopped All before the end of the journal (a
// *LineError for a line that cannot be read), or nil.
func (r *Reader) Err() error { return r.err }

// readLine returns the next line with its newline, if it has one.
func (r *Reader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(line)+len(chunk) > MaxLineBytes {
			return nil, &LineError{Line: r.line + 1, Err: fmt.Errorf("longer than %d bytes", MaxLineBytes)}
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}

// ReadAll reads a whole journal. truncated is the line number of a torn
// last line that was skipped, or 0.
func ReadAll(r io.Reader) (ops []engine.Operation, truncated int, err error) {
	jr := NewReader(r)
	for {
		op, err := jr.Next()
		if errors.Is(err, io.EOF) {
			return ops, jr.Truncated(), nil
		}
		if err != nil {
			return ops, 0, err
		}
		ops = append(ops, op)
	}
}
