//go:build linux

package command

import "syscall"

// withParentDeath has the kernel send the program SIGKILL when the thread
// that started it exits: in a Go program that is when the process dies (a
// crashed or killed dispatch worker), as the runtime does not end its
// threads unless a goroutine locked to one exits, which this package does
// not do. Otherwise a program in a process group of its own would run on
// as an orphan.
func withParentDeath(a *syscall.SysProcAttr) *syscall.SysProcAttr {
	a.Pdeathsig = syscall.SIGKILL
	return a
}
