package fsutil

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// oDirect is the open flag for transfers around the page cache.
const oDirect = unix.O_DIRECT

// isInvalid reports whether err is the EINVAL a file system or device gives
// for a direct transfer it does not support.
func isInvalid(err error) bool { return errors.Is(err, syscall.EINVAL) }

// clearDirect turns O_DIRECT off on an open file.
func clearDirect(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		var flags int
		if flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0); ferr == nil {
			_, ferr = unix.FcntlInt(fd, unix.F_SETFL, flags&^unix.O_DIRECT)
		}
	})
	if err != nil {
		return err
	}
	return ferr
}
