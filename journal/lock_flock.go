//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package journal

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lock takes an exclusive advisory lock (flock) on the journal file, or
// fails with ErrLocked at once if another open file holds it. The lock
// belongs to the open file: it is released when the file is closed and
// when the process ends, however it ends.
func lock(f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = raw.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			if !errors.Is(ferr, syscall.EINTR) {
				return
			}
		}
	})
	switch {
	case err != nil:
		return err
	case errors.Is(ferr, syscall.EWOULDBLOCK):
		return fmt.Errorf("%w: another dispatch (or another Writer in this process) has it open; a journal has one writer at a time", ErrLocked)
	case ferr != nil:
		return fmt.Errorf("lock: %w", ferr)
	}
	return nil
}
