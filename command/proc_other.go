//go:build !unix

package command

import (
	"fmt"
	"os"
	"syscall"
)

// newProcessGroup returns nil: without process groups, only the program
// itself is signalled.
func newProcessGroup() *syscall.SysProcAttr { return nil }

// killGroup kills the process pid (there is no group to signal, nor a
// gentler signal than a kill).
func killGroup(pid int, _ syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil
	}
	return p.Kill()
}

// describeState says how a process ended.
func describeState(s *os.ProcessState) string {
	return fmt.Sprintf("exited with status %d", s.ExitCode())
}
