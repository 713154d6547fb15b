//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package journal

import "os"

// lock is a no-op where flock is not available: one writer per journal is
// then up to the operator.
func lock(*os.File) error { return nil }
