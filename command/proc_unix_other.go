//go:build unix && !linux

package command

import "syscall"

// withParentDeath leaves a as it is: only Linux can kill a program when
// its parent dies.
func withParentDeath(a *syscall.SysProcAttr) *syscall.SysProcAttr { return a }
