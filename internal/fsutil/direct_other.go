//go:build !linux

package fsutil

import "os"

// oDirect is 0 where O_DIRECT does not exist: files go through the cache.
const oDirect = 0

func isInvalid(error) bool { return false }

func clearDirect(*os.File) error { return nil }

func preadOnce(f *os.File, p []byte, off int64) (int, error) { return f.ReadAt(p, off) }
