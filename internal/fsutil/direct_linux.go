package fsutil

import (
	"errors"
	"io"
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

// preadOnce is one pread(2) of f: unlike os.File.ReadAt, it does not go on
// after a short transfer, which for a direct read at the end of a file
// would be one at an unaligned offset.
func preadOnce(f *os.File, p []byte, off int64) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, perr = unix.Pread(int(fd), p, off) // #nosec G115 -- a file descriptor fits an int
			if perr != unix.EINTR {
				return true
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if perr != nil {
		return 0, &os.PathError{Op: "read", Path: f.Name(), Err: perr}
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}
