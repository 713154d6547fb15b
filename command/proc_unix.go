//go:build unix

package command

import (
	"fmt"
	"os"
	"syscall"
)

// newProcessGroup makes the program the leader of a process group of its
// own, so that it and everything it starts can be signalled at once, and,
// where the system can, has it killed when this process dies (see
// withParentDeath).
func newProcessGroup() *syscall.SysProcAttr {
	return withParentDeath(&syscall.SysProcAttr{Setpgid: true})
}

// killGroup sends sig to the process group led by pid.
func killGroup(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pid, sig); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("signal process group %d: %w", pid, err)
	}
	return nil
}

// signalNames name the signals a program most often dies of.
var signalNames = map[syscall.Signal]string{
	syscall.SIGABRT: "SIGABRT", syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE",
	syscall.SIGHUP: "SIGHUP", syscall.SIGILL: "SIGILL", syscall.SIGINT: "SIGINT",
	syscall.SIGKILL: "SIGKILL", syscall.SIGPIPE: "SIGPIPE", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGSEGV: "SIGSEGV", syscall.SIGTERM: "SIGTERM", syscall.SIGUSR1: "SIGUSR1",
	syscall.SIGUSR2: "SIGUSR2", syscall.SIGXCPU: "SIGXCPU",
}

// describeState says how a process ended.
func describeState(s *os.ProcessState) string {
	if ws, ok := s.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		name, ok := signalNames[ws.Signal()]
		if !ok {
			name = fmt.Sprintf("signal %d", int(ws.Signal()))
		}
		return "was killed by " + name
	}
	return fmt.Sprintf("exited with status %d", s.ExitCode())
}
