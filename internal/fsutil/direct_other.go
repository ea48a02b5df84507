//go:build !linux

package fsutil

import "os"

// oDirect is 0 where O_DIRECT does not exist: files go through the cache.
const oDirect = 0

func isInvalid(error) bool { return false }

func clearDirect(*os.File) error { return nil }
