//go:build unix

package regularfile

import (
	"os"
	"syscall"
)

// nonBlocking makes the open of a named pipe or a device return at once,
// so that it can be looked at and refused.
const nonBlocking = syscall.O_NONBLOCK

// clearNonBlocking puts a regular file back in blocking mode. (Linux and
// the BSDs ignore the flag on regular files; this keeps it that way on
// systems that do not.)
func clearNonBlocking(f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}
