//go:build !unix

package regularfile

import "os"

// nonBlocking is 0 where opens of special files do not block the way a
// named pipe's does on Unix.
const nonBlocking = 0

func clearNonBlocking(*os.File) error { return nil }
