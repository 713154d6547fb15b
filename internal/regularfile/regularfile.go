// Package regularfile opens and reads the files dispatch is pointed at —
// configs, scripts, scenarios, journals — safely: only regular files are
// accepted, a named pipe or a device is refused without blocking on it, and
// a read never goes past its limit, however large the file.
package regularfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrNotRegular is matched (errors.Is) by the error for a path that is a
// directory, a named pipe, a device or a socket.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is matched (errors.Is) by the error for a file over the limit
// a Read was given.
var ErrTooLarge = errors.New("file too large")

// KindError says what a path is when it is not a regular file. It comes
// wrapped in an *fs.PathError naming the path.
type KindError struct {
	Mode fs.FileMode // the file's type bits
}

// Error says what the file is: "is a named pipe, not a regular file".
func (e *KindError) Error() string { return "is " + Describe(e.Mode) + ", not a regular file" }

// Is makes a KindError match ErrNotRegular.
func (e *KindError) Is(target error) bool { return target == ErrNotRegular }

// SizeError says that a file is over a read's limit. It comes wrapped in an
// *fs.PathError naming the path.
type SizeError struct {
	Size  int64 // the file's size, or -1 when only "more than Limit" is known
	Limit int64
}

// Error gives the size and the limit.
func (e *SizeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("is over the limit of %d bytes", e.Limit)
	}
	return fmt.Sprintf("is %d bytes; the limit is %d", e.Size, e.Limit)
}

// Is makes a SizeError match ErrTooLarge.
func (e *SizeError) Is(target error) bool { return target == ErrTooLarge }

// Describe names a file type for messages: "a directory", "a named pipe",
// "a character device", …
func Describe(mode fs.FileMode) string {
	switch {
	case mode.IsRegular():
		return "a regular file"
	case mode.IsDir():
		return "a directory"
	case mode&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	case mode&fs.ModeCharDevice != 0:
		return "a character device"
	case mode&fs.ModeDevice != 0:
		return "a device"
	case mode&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file (mode " + mode.Type().String() + ")"
}

// Open opens path for reading if it is a regular file (a symbolic link to
// one is); anything else is refused with a *KindError, without blocking on
// a named pipe that has no writer.
func Open(path string) (*os.File, error) {
	return OpenFile(path, os.O_RDONLY, 0)
}

// OpenFile is [os.OpenFile] for regular files only: a path that is
// something else is refused without being opened (opening some devices
// does something: a tape rewinds, a watchdog arms); if it becomes something
// else between that look and the open, the open does not block (a named
// pipe or a device opens at once) and the file is refused and closed. With
// os.O_CREATE, a missing path is created as a regular file.
func OpenFile(path string, flag int, perm fs.FileMode) (*os.File, error) {
	if info, err := os.Stat(path); err == nil && !info.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: path, Err: &KindError{Mode: info.Mode().Type()}}
	}
	f, err := os.OpenFile(path, flag|nonBlocking, perm)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: path, Err: &KindError{Mode: info.Mode().Type()}}
	}
	if err := clearNonBlocking(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Read returns the content of the regular file at path, reading at most
// limit bytes: a file that is larger (by its size, or because it grew while
// it was read) is refused with a *SizeError, without reading it whole.
func Read(path string, limit int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: &SizeError{Size: info.Size(), Limit: limit}}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: &SizeError{Size: -1, Limit: limit}}
	}
	return data, nil
}

// Reason returns err's text without the operation and path that an
// *fs.PathError puts in front, for messages that name the file already.
func Reason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
