package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// largeFile is the size from which an extracted file is written around the
// page cache (or, where the file system refuses, has its writeback started
// as soon as it is written); smaller files wait for the final syncfs.
const largeFile = 1 << 20

// directFlag is the open flag that asks for direct I/O, or 0.
func directFlag(direct bool) int {
	if direct {
		return fsutil.DirectFlag
	}
	return 0
}

// ExtractOptions says where and what to extract.
type ExtractOptions struct {
	// Dest is an existing, empty directory; nothing is written outside it.
	Dest string
	// Include selects the entries to write; the others are still verified.
	// Nil writes every entry.
	Include func(name string) bool
	// Progress, if set, is called after every file.
	Progress func(Progress)
}

// Extract verifies the archive stream r against m while writing the selected
// entries under opts.Dest, then restores directory modes and times and syncs
// the file system. Any failure leaves only files under Dest, which the caller
// removes.
func Extract(ctx context.Context, r io.Reader, m *manifest.Manifest, opts ExtractOptions) (*Report, error) {
	root, err := os.OpenRoot(opts.Dest)
	if err != nil {
		return nil, fmt.Errorf("open extraction directory: %w", err)
	}
	defer root.Close()
	chown := os.Geteuid() == 0
	type dirMeta struct {
		name  string
		mode  os.FileMode
		mtime time.Time
		uid   int
		gid   int
	}
	var dirs []dirMeta
	buf := make([]byte, 256<<10)
	var dbuf []byte // aligned, for the files written around the page cache

	rep, err := walk(ctx, r, m, opts.Progress, func(hdr *tar.Header, name string, want manifest.Entry, content io.Reader) error {
		if opts.Include != nil && !opts.Include(name) {
			return nil
		}
		if parent := path.Dir(name); parent != "." {
			if err := root.MkdirAll(parent, 0o700); err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil && !os.IsExist(err) {
				return fmt.Errorf("extract %s: %w", name, err)
			}
			dirs = append(dirs, dirMeta{name, fileMode(uint32(hdr.Mode)), hdr.ModTime, hdr.Uid, hdr.Gid})
		case tar.TypeSymlink:
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
			if chown {
				_ = root.Lchown(name, hdr.Uid, hdr.Gid)
			}
		default:
			// Large files go around the page cache (see fsutil.DirectWriter):
			// a restore then takes no memory the kernel must find and fill
			// for them. The syncfs below makes them durable, as the rest.
			large := hdr.Size >= largeFile
			direct := large && fsutil.DirectFlag != 0
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|directFlag(direct), 0o600)
			if err != nil && direct && fsutil.IsDirectRefused(err) {
				direct = false
				f, err = root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			}
			if err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
			if large {
				if direct && dbuf == nil {
					dbuf = fsutil.AlignedBuffer(fsutil.DirectChunk)
				}
				w := fsutil.NewDirectWriter(f, direct, dbuf)
				_, err = io.CopyBuffer(w, content, buf)
				if err == nil {
					err = w.Finish()
				}
			} else {
				// Hides os.File's ReadFrom, which would allocate a buffer
				// of its own for every file instead of using buf.
				_, err = io.CopyBuffer(struct{ io.Writer }{f}, content, buf)
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("extract %s: %w", name, err)
			}
			if chown {
				_ = f.Chown(hdr.Uid, hdr.Gid)
			}
			if err := f.Chmod(fileMode(uint32(hdr.Mode))); err != nil {
				f.Close()
				return fmt.Errorf("extract %s: %w", name, err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
			if err := root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Deepest directories first, so a read-only parent never blocks a child.
	slices.Reverse(dirs)
	for _, d := range dirs {
		if chown {
			_ = root.Lchown(d.name, d.uid, d.gid)
		}
		if err := root.Chmod(d.name, d.mode); err != nil {
			return nil, fmt.Errorf("extract %s: %w", d.name, err)
		}
		if err := root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return nil, fmt.Errorf("extract %s: %w", d.name, err)
		}
	}
	if err := syncFS(opts.Dest); err != nil {
		return nil, fmt.Errorf("extract: %w", err)
	}
	return rep, nil
}

// syncFS flushes the whole file system holding dir: one call instead of an
// fsync per extracted file.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync file system of %s: %w", dir, err)
	}
	return nil
}
