package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// TreeMismatch lists how a directory tree differs from a manifest.
type TreeMismatch struct {
	Missing   []string
	Extra     []string
	Different []string
}

func (t *TreeMismatch) empty() bool {
	return len(t.Missing) == 0 && len(t.Extra) == 0 && len(t.Different) == 0
}

func (t *TreeMismatch) Error() string {
	var parts []string
	add := func(what string, list []string) {
		if len(list) == 0 {
			return
		}
		shown := list
		if len(shown) > 5 {
			shown = shown[:5]
		}
		s := fmt.Sprintf("%d %s (%s", len(list), what, strings.Join(shown, ", "))
		if len(list) > len(shown) {
			s += ", ..."
		}
		parts = append(parts, s+")")
	}
	add("missing", t.Missing)
	add("unexpected", t.Extra)
	add("different", t.Different)
	return "tree does not match the manifest: " + strings.Join(parts, "; ")
}

// Unwrap marks a mismatch as an integrity failure.
func (t *TreeMismatch) Unwrap() error { return ErrIntegrity }

// CheckTree compares the files under root for every path of m against m:
// type, size, SHA-256, symlink target and permission bits. It returns a
// *TreeMismatch (wrapping ErrIntegrity) listing every difference. Files
// are read and hashed on every core, as they are independent.
func CheckTree(ctx context.Context, root string, m *manifest.Manifest, progress func(Progress)) (*Report, error) {
	return checkTree(ctx, root, m, progress, runtime.GOMAXPROCS(0))
}

// CheckTreeReaders is CheckTree reading and hashing readers files at once:
// one for a check that runs beside the application and should take no
// more of the machine than it must.
func CheckTreeReaders(ctx context.Context, root string, m *manifest.Manifest, readers int, progress func(Progress)) (*Report, error) {
	return checkTree(ctx, root, m, progress, readers)
}

// CheckTreeLayout is CheckTree without reading file contents: types, sizes,
// symlink targets and permission bits only. It is for a tree whose contents
// were hashed as they were written and that was then moved into place by
// renames; reading it again right away would only read the page cache.
func CheckTreeLayout(ctx context.Context, root string, m *manifest.Manifest, progress func(Progress)) (*Report, error) {
	return checkTree(ctx, root, m, progress, 0)
}

// checkTree reads the files' contents with readers goroutines, or not at
// all where readers is 0.
func checkTree(ctx context.Context, root string, m *manifest.Manifest, progress func(Progress), readers int) (*Report, error) {
	contents := readers > 0
	want := make(map[string]manifest.Entry, len(m.Files))
	for _, e := range m.Files {
		want[e.Path] = e
	}
	mis := &TreeMismatch{}
	seen := make(map[string]bool, len(m.Files))
	rep := &Report{}
	var hashers *treeHashers
	if contents {
		hashers = newTreeHashers(ctx, readers)
		defer hashers.stop()
	}
	for _, p := range m.Paths {
		top := filepath.Join(root, filepath.FromSlash(p))
		err := filepath.WalkDir(top, func(full string, d fs.DirEntry, err error) error {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && full == top {
					return nil // reported as missing below, if the manifest has it
				}
				return err
			}
			rel, err := filepath.Rel(root, full)
			if err != nil {
				return err
			}
			name := filepath.ToSlash(rel)
			e, ok := want[name]
			if !ok {
				mis.Extra = append(mis.Extra, name)
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			seen[name] = true
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case d.IsDir():
				rep.Dirs++
				if e.Type != manifest.TypeDir || !sameMode(info.Mode(), e.Mode) {
					mis.Different = append(mis.Different, name)
				}
			case d.Type()&fs.ModeSymlink != 0:
				rep.Links++
				target, err := os.Readlink(full)
				if err != nil {
					return err
				}
				if e.Type != manifest.TypeSymlink || target != e.Link {
					mis.Different = append(mis.Different, name)
				}
			case d.Type().IsRegular():
				if e.Type != manifest.TypeFile || info.Size() != e.Size || !sameMode(info.Mode(), e.Mode) {
					mis.Different = append(mis.Different, name)
					return nil
				}
				rep.Files++
				rep.Bytes += info.Size()
				if contents {
					if err := hashers.check(full, name, e.SHA256, info.Size()); err != nil {
						return err
					}
					if progress != nil {
						files, bytes := hashers.done()
						progress(Progress{Files: files, Bytes: bytes, Path: name})
					}
				} else if progress != nil {
					progress(Progress{Files: rep.Files, Bytes: rep.Bytes, Path: name})
				}
			default:
				mis.Different = append(mis.Different, name)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("check tree %s: %w", top, err)
		}
	}
	if contents {
		different, err := hashers.stop()
		if err != nil {
			return nil, fmt.Errorf("check tree: %w", err)
		}
		mis.Different = append(mis.Different, different...)
		sort.Strings(mis.Different)
		if progress != nil {
			progress(Progress{Files: rep.Files, Bytes: rep.Bytes})
		}
	}
	for _, e := range m.Files {
		if !seen[e.Path] {
			mis.Missing = append(mis.Missing, e.Path)
		}
	}
	sort.Strings(mis.Missing)
	if !mis.empty() {
		return rep, mis
	}
	return rep, nil
}

// HashFile returns the hex SHA-256 of the file at name.
func HashFile(name string) (string, int64, error) {
	f, err := os.Open(name) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 256<<10))
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// treeHashers read and hash files on goroutines of their own and collect
// those whose sums differ.
type treeHashers struct {
	ctx    context.Context
	jobs   chan treeJob
	wg     sync.WaitGroup
	once   sync.Once
	files  atomic.Int64
	bytes  atomic.Int64
	mu     sync.Mutex
	differ []string
	err    error // the first read error
}

type treeJob struct {
	full, name, sum string
	size            int64
}

func newTreeHashers(ctx context.Context, n int) *treeHashers {
	h := &treeHashers{ctx: ctx, jobs: make(chan treeJob, 2*n)}
	for range n {
		h.wg.Add(1)
		go h.run()
	}
	return h
}

func (h *treeHashers) run() {
	defer h.wg.Done()
	buf := make([]byte, 256<<10)
	for j := range h.jobs {
		if h.firstErr() != nil || h.ctx.Err() != nil {
			continue
		}
		sum, err := hashFile(j.full, buf)
		h.mu.Lock()
		switch {
		case err != nil && h.err == nil:
			h.err = err
		case err == nil && sum != j.sum:
			h.differ = append(h.differ, j.name)
		}
		h.mu.Unlock()
		h.files.Add(1)
		h.bytes.Add(j.size)
	}
}

// firstErr is the first read error met so far, if any.
func (h *treeHashers) firstErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// check queues the file full (name in the manifest, size bytes) to be
// compared with sum; it returns the first read error met so far.
func (h *treeHashers) check(full, name, sum string, size int64) error {
	if err := h.firstErr(); err != nil {
		return err
	}
	h.jobs <- treeJob{full: full, name: name, sum: sum, size: size}
	return nil
}

// done is how many files, and bytes, have been read so far.
func (h *treeHashers) done() (int, int64) { return int(h.files.Load()), h.bytes.Load() }

// stop waits for every queued file and returns those that differ and the
// first read error.
func (h *treeHashers) stop() ([]string, error) {
	h.once.Do(func() { close(h.jobs) })
	h.wg.Wait()
	if err := h.ctx.Err(); err != nil && h.err == nil {
		return nil, err
	}
	return h.differ, h.err
}

func hashFile(name string, buf []byte) (string, error) {
	f, err := os.Open(name) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sameMode compares a mode on the disk with a recorded one, leaving out the
// setuid and setgid bits a restore drops.
func sameMode(m fs.FileMode, recorded uint32) bool {
	return uint32(tarMode(m))&^setIDBits == recorded&^setIDBits // #nosec G115 -- bounded by the tar and gzip formats (modes are 12 bits, sizes checked against the manifest)
}

// Layout describes the tree under root for every path as manifest entries,
// without reading file contents (no SHA-256): what CheckTreeLayout compares.
// It is for copies that are moved into place by renames, such as the
// pre-restore copies an undo swaps back. A path that does not exist has no
// entries.
func Layout(ctx context.Context, root string, paths []string) ([]manifest.Entry, int64, error) {
	var (
		entries []manifest.Entry
		total   int64
	)
	for _, p := range paths {
		top := filepath.Join(root, filepath.FromSlash(p))
		err := filepath.WalkDir(top, func(full string, d fs.DirEntry, err error) error {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && full == top {
					return nil
				}
				return err
			}
			rel, err := filepath.Rel(root, full)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			_, e := describe(filepath.ToSlash(rel), info)
			switch {
			case d.IsDir():
				e.Type = manifest.TypeDir
			case d.Type()&fs.ModeSymlink != 0:
				if e.Link, err = os.Readlink(full); err != nil {
					return err
				}
				e.Type = manifest.TypeSymlink
			case d.Type().IsRegular():
				e.Type, e.Size = manifest.TypeFile, info.Size()
				total += e.Size
			default:
				return fmt.Errorf("%s is not a regular file, directory or symlink (%s)", full, d.Type())
			}
			entries = append(entries, e)
			return nil
		})
		if err != nil {
			return nil, 0, fmt.Errorf("describe tree %s: %w", top, err)
		}
	}
	return entries, total, nil
}
