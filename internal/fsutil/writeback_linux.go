package fsutil

import (
	"os"

	"golang.org/x/sys/unix"
)

// StartWriteback asks the kernel to start writing n bytes of f from off to
// disk and returns without waiting (sync_file_range with
// SYNC_FILE_RANGE_WRITE). It is a hint: errors are ignored, because the fsync
// that must follow reports any that matter.
func StartWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
