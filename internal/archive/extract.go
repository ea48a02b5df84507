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
// as soon as it is written); smaller files are made durable by the syncs of
// the file system (see fsSyncer).
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
	syncer, err := startSync(opts.Dest, syncEvery)
	if err != nil {
		return nil, fmt.Errorf("open extraction directory: %w", err)
	}
	defer syncer.Close()
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

	parents := &parentDirs{root: root}
	defer parents.close()
	rep, err := walk(ctx, r, m, true, false, opts.Progress, func(hdr *tar.Header, name string, want manifest.Entry, content io.Reader) error {
		if opts.Include != nil && !opts.Include(name) {
			return nil
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := parents.mkdirAll(path.Dir(name)); err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
			if err := root.Mkdir(name, 0o700); err != nil && !os.IsExist(err) {
				return fmt.Errorf("extract %s: %w", name, err)
			}
			dirs = append(dirs, dirMeta{name, restoredMode(uint32(hdr.Mode)), hdr.ModTime, hdr.Uid, hdr.Gid}) // #nosec G115 -- bounded by the tar and gzip formats (modes are 12 bits, sizes checked against the manifest)
		case tar.TypeSymlink:
			if err := parents.mkdirAll(path.Dir(name)); err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
			if chown {
				_ = root.Lchown(name, hdr.Uid, hdr.Gid)
			}
		default:
			dir, err := parents.open(path.Dir(name))
			if err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
			if err := writeFile(dir, path.Base(name), hdr, content, chown, buf, &dbuf); err != nil {
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
	if err := syncer.Finish(); err != nil {
		return nil, fmt.Errorf("extract: %w", err)
	}
	return rep, nil
}

// The owner of the files this process creates.
var euid, egid = os.Geteuid(), os.Getegid()

// writeFile creates the file base in the directory dir (an open descriptor
// inside the extraction root) and writes content to it with the header's
// owner, mode and time. The name is a single component created with O_EXCL
// and O_NOFOLLOW, so nothing outside dir is reached: a symlink or any
// existing file of that name makes it fail. Large files go around the page
// cache (see fsutil.DirectWriter): a restore then takes no memory the kernel
// must find and fill for them; the final syncfs makes them durable, as the
// rest.
func writeFile(dir int, base string, hdr *tar.Header, content io.Reader, chown bool, buf []byte, dbuf *[]byte) error {
	large := hdr.Size >= largeFile
	direct := large && fsutil.DirectFlag != 0
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dir, base, flags|directFlag(direct), 0o600)
	if err != nil && direct && fsutil.IsDirectRefused(err) {
		direct = false
		fd, err = unix.Openat(dir, base, flags, 0o600)
	}
	if err != nil {
		return &os.PathError{Op: "create", Path: base, Err: err}
	}
	f := os.NewFile(uintptr(fd), base)
	if large {
		if direct && *dbuf == nil {
			*dbuf = fsutil.AlignedBuffer(fsutil.DirectChunk)
		}
		w := fsutil.NewDirectWriter(f, direct, *dbuf)
		_, err = io.CopyBuffer(w, content, buf)
		if err == nil {
			err = w.Finish()
		}
	} else {
		// Hides os.File's ReadFrom, which would allocate a buffer of its own
		// for every file instead of using buf.
		_, err = io.CopyBuffer(struct{ io.Writer }{f}, content, buf)
	}
	if err == nil && chown && (hdr.Uid != euid || hdr.Gid != egid) {
		_ = f.Chown(hdr.Uid, hdr.Gid)
	}
	if err == nil {
		err = f.Chmod(restoredMode(uint32(hdr.Mode))) // #nosec G115 -- bounded by the tar and gzip formats (modes are 12 bits, sizes checked against the manifest)
	}
	if err == nil {
		t := unix.NsecToTimespec(hdr.ModTime.UnixNano())
		err = unix.UtimesNanoAt(dir, base, []unix.Timespec{t, t}, unix.AT_SYMLINK_NOFOLLOW)
		if err != nil {
			err = &os.PathError{Op: "chtimes", Path: base, Err: err}
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// parentDirs keeps the directory that the last file was written to open:
// the files of an archive come directory by directory, so each is created
// relative to it with one system call, instead of walking its whole path
// through the root for every file and every operation on it.
type parentDirs struct {
	root    *os.Root
	name    string
	dir     *os.File
	created map[string]bool
}

// mkdirAll creates the directory name (and its parents) inside the root,
// once.
func (p *parentDirs) mkdirAll(name string) error {
	if name == "." || p.created[name] {
		return nil
	}
	if err := p.root.MkdirAll(name, 0o700); err != nil {
		return err
	}
	if p.created == nil {
		p.created = map[string]bool{}
	}
	p.created[name] = true
	return nil
}

// open returns a descriptor of the directory name inside the root, creating
// it if needed; it stays valid until the next call.
func (p *parentDirs) open(name string) (int, error) {
	if p.dir != nil && p.name == name {
		return int(p.dir.Fd()), nil
	}
	if err := p.mkdirAll(name); err != nil {
		return -1, err
	}
	d, err := p.root.Open(name)
	if err != nil {
		return -1, err
	}
	p.close()
	p.dir, p.name = d, name
	return int(d.Fd()), nil
}

func (p *parentDirs) close() {
	if p.dir != nil {
		p.dir.Close() // #nosec G104 -- closed on an error path or after use; the error that matters is returned
		p.dir = nil
	}
}

// setIDBits are the setuid and setgid bits of a tar mode. Extraction never
// sets them: the worker runs as root, and an archive could otherwise plant a
// program that runs as its owner.
const setIDBits = 0o6000

// restoredMode is the mode a restored entry gets: as archived, without the
// setuid and setgid bits.
func restoredMode(bits uint32) os.FileMode { return fileMode(bits &^ setIDBits) }

// SetID reports whether a recorded mode carries the setuid or setgid bit,
// which a restore drops.
func SetID(mode uint32) bool { return mode&setIDBits != 0 }
