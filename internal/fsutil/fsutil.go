// Package fsutil holds the small file-system primitives that keep data safe:
// atomic writes (temporary name, fsync, rename, fsync of the directory) and
// free-space checks.
package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFileAtomic writes data to name through a temporary file in the same
// directory, fsyncs it, renames it over name and fsyncs the directory, so a
// reader sees either the old content or the new, never a part.
func WriteFileAtomic(name string, data []byte, perm os.FileMode) error {
	tmp := TempName(name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()      // #nosec G104 -- closed on an error path or after use; the error that matters is returned
		os.Remove(tmp) // #nosec G104 -- best-effort removal of a temporary file; the error that matters is returned
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()      // #nosec G104 -- closed on an error path or after use; the error that matters is returned
		os.Remove(tmp) // #nosec G104 -- best-effort removal of a temporary file; the error that matters is returned
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp) // #nosec G104 -- best-effort removal of a temporary file; the error that matters is returned
		return err
	}
	return Commit(tmp, name)
}

// TempName is the temporary name used for a file that will become name:
// hidden, in the same directory, ending in ".tmp".
func TempName(name string) string {
	return filepath.Join(filepath.Dir(name), "."+filepath.Base(name)+".tmp")
}

// Commit renames the fsynced file tmp to name and fsyncs the directory.
func Commit(tmp, name string) error {
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(name))
}

// SyncDir fsyncs a directory so that renames and creations in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// UsedBytes returns the space the files under dir take on the disk (their
// allocated blocks); a dir that does not exist takes none.
func UsedBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("space used under %s: %w", dir, err)
	}
	return n, nil
}

// FreeBytes returns the space available to an unprivileged user on the file
// system holding path.
func FreeBytes(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", path, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil // #nosec G115 -- statfs block counts, far below 2^63 bytes on any file system
}

// Exists reports whether name exists (without following a final symlink).
func Exists(name string) (bool, error) {
	_, err := os.Lstat(name)
	if err == nil {
		return true, nil
	}
	if os.IsNotExist(err) {
		return false, nil
	}
	return false, err
}
