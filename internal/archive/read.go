package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"strings"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// Report sums up what a verification or extraction read.
type Report struct {
	Files int   `json:"files"`
	Dirs  int   `json:"dirs"`
	Links int   `json:"links"`
	Bytes int64 `json:"bytes"`
}

// visitFunc is called for every entry that passed the safety checks; for a
// regular file, content yields exactly its bytes and is hashed on the way.
type visitFunc func(hdr *tar.Header, name string, want manifest.Entry, content io.Reader) error

// walk reads the archive stream r entry by entry and checks it against m:
// every entry safe, expected, once; every file's size and SHA-256; nothing
// missing; and the size of the compressed stream itself and, if hashStream,
// its SHA-256. The content of each file is only read once, by visit or by
// walk.
//
// With skipCopied, the members the table marks as copied from the previous
// backup are checked against their SHA-256 and not inflated, and their
// entries are counted as read (see copiedFilter).
func walk(ctx context.Context, r io.Reader, m *manifest.Manifest, hashStream, skipCopied bool, progress func(Progress), visit visitFunc) (*Report, error) {
	// The work is shared: one goroutine reads and hashes the compressed
	// stream (hashAhead), one splits it into gzip members, one per core
	// inflates them, and this one checks and hashes the entries.
	raw := newCountingHasher(io.Discard)
	if !hashStream {
		raw.h = nil
	}
	// streamMismatch reports whether the stream read so far differs from
	// the manifest's archive, and its SHA-256 ("" if not hashed).
	streamMismatch := func() (string, bool) {
		if !hashStream {
			return "", raw.n != m.Archive.Size
		}
		sum := raw.Sum()
		return sum, sum != m.Archive.SHA256 || raw.n != m.Archive.Size
	}
	src := newHashAhead(r, raw)
	defer src.Close()

	expected := make(map[string]manifest.Entry, len(m.Files)+1)
	for _, e := range m.Files {
		expected[e.Path] = e
	}
	if d := m.Database; d != nil {
		expected[d.ArchivePath] = manifest.Entry{Path: d.ArchivePath, Type: manifest.TypeFile, Size: d.Size, SHA256: d.SHA256, Mode: 0o600}
	}
	// Directories that only hold the dump are written by Create but are not
	// manifest entries.
	implicitDirs := map[string]bool{}
	if d := m.Database; d != nil {
		for dir := path.Dir(d.ArchivePath); dir != "."; dir = path.Dir(dir) {
			implicitDirs[dir] = true
		}
	}

	// Any failure of the stream itself is first checked against the archive
	// checksum, so that a flipped byte is reported as what it is.
	var gz io.ReadCloser
	// The inflater's read-ahead must stop before src is read here.
	closeGz := func() {
		if gz != nil {
			gz.Close() // #nosec G104 -- closed on an error path or after use; the error that matters is returned
			gz = nil
		}
	}
	defer closeGz()
	// archiveMismatch stops the inflater, reads the rest of the archive and
	// returns a checksum error (with cause, if any) when the archive is not
	// the one the manifest describes, or nil when it is. An archive that
	// cannot be read (a failing disk) is not known to be damaged: that read
	// error is returned as it is.
	archiveMismatch := func(cause error) error {
		closeGz()
		if _, err := io.Copy(io.Discard, src); err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if sum, bad := streamMismatch(); bad {
			return checksumError(m, sum, raw.n, cause)
		}
		return nil
	}
	streamFailure := func(err error) error {
		if cerr := archiveMismatch(err); cerr != nil {
			return cerr
		}
		return integrity("", "archive stream is corrupt: %v", err)
	}

	rep := &Report{}
	seen := make(map[string]bool, len(expected))
	symlinks := map[string]bool{}
	var total int64
	var in io.Reader = src
	if skipCopied {
		entries, copied, err := copiedEntries(m)
		if err != nil {
			return nil, err
		}
		if len(copied) > 0 {
			in = newCopiedFilter(src, copied)
		}
		for _, i := range entries {
			e := m.Files[i]
			seen[e.Path] = true
			switch e.Type {
			case manifest.TypeDir:
				rep.Dirs++
			case manifest.TypeSymlink:
				symlinks[e.Path] = true
				rep.Links++
			default:
				rep.Files++
				rep.Bytes += e.Size
				total += e.Size
			}
		}
		if progress != nil && len(entries) > 0 {
			progress(Progress{Files: rep.Files, Bytes: rep.Bytes, Reused: rep.Bytes})
		}
	}

	gz, err := newGzipReader(in, runtime.GOMAXPROCS(0))
	if err != nil {
		gz = nil
		return nil, streamFailure(fmt.Errorf("not a gzip stream: %w", err))
	}
	tr := tar.NewReader(gz)

	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, streamFailure(err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if err := checkHeader(hdr, name, symlinks); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, unsafeEntry(name, "appears twice in the archive")
		}
		seen[name] = true
		want, ok := expected[name]
		if !ok {
			if hdr.Typeflag == tar.TypeDir && implicitDirs[name] {
				continue
			}
			return nil, unsafeEntry(name, "is not listed in the manifest")
		}
		if got := headerType(hdr); got != want.Type {
			return nil, integrity(name, "is a %s in the archive but a %s in the manifest", got, want.Type)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			rep.Dirs++
			if err := visit(hdr, name, want, nil); err != nil {
				return nil, err
			}
		case tar.TypeSymlink:
			if hdr.Linkname != want.Link {
				return nil, integrity(name, "links to %q but the manifest says %q", hdr.Linkname, want.Link)
			}
			symlinks[name] = true
			rep.Links++
			if err := visit(hdr, name, want, nil); err != nil {
				return nil, err
			}
		default: // regular file
			if hdr.Size != want.Size {
				return nil, integrity(name, "is %d bytes in the archive but %d in the manifest", hdr.Size, want.Size)
			}
			total += hdr.Size
			if total > m.TotalBytes {
				return nil, integrity(name, "archive expands beyond the %d bytes the manifest allows", m.TotalBytes)
			}
			h := sha256.New()
			content := &hashingReader{r: tr, h: h}
			if err := visit(hdr, name, want, content); err != nil {
				if content.err != nil {
					// The archive failed under the writer (extraction): the
					// damage is reported as such, not as a write error.
					return nil, streamFailure(content.err)
				}
				return nil, err
			}
			if _, err := io.CopyBuffer(io.Discard, content, buf); err != nil {
				return nil, streamFailure(err)
			}
			if content.n != hdr.Size {
				return nil, streamFailure(fmt.Errorf("%s: %d of %d bytes", name, content.n, hdr.Size))
			}
			if sum := hex.EncodeToString(h.Sum(nil)); sum != want.SHA256 {
				if err := archiveMismatch(nil); err != nil {
					return nil, err
				}
				return nil, integrity(name, "checksum mismatch: sha256 %s, manifest says %s", sum, want.SHA256)
			}
			rep.Files++
			rep.Bytes += hdr.Size
			if progress != nil {
				progress(Progress{Files: rep.Files, Bytes: rep.Bytes, Path: name})
			}
		}
	}
	// Read whatever follows the tar end (gzip trailer, padding) so the
	// archive hash covers every byte.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return nil, streamFailure(err)
	}
	closeGz()
	if _, err := io.Copy(io.Discard, in); err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	if sum, bad := streamMismatch(); bad {
		return nil, checksumError(m, sum, raw.n, nil)
	}
	for _, e := range m.Files {
		if !seen[e.Path] {
			return nil, integrity(e.Path, "is in the manifest but missing from the archive")
		}
	}
	if d := m.Database; d != nil && !seen[d.ArchivePath] {
		return nil, integrity(d.ArchivePath, "database dump is in the manifest but missing from the archive")
	}
	return rep, nil
}

// checksumError describes an archive that is not the manifest's; sum is ""
// where the stream was not hashed (only its size differs).
func checksumError(m *manifest.Manifest, sum string, size int64, cause error) error {
	msg := fmt.Sprintf("archive checksum mismatch: sha256 %s (%d bytes), manifest says %s (%d bytes)", sum, size, m.Archive.SHA256, m.Archive.Size)
	if sum == "" {
		msg = fmt.Sprintf("archive size mismatch: %d bytes, manifest says %d", size, m.Archive.Size)
	}
	if size < m.Archive.Size {
		msg += "; the archive is truncated"
	}
	if cause != nil {
		msg += fmt.Sprintf(" (%v)", cause)
	}
	return &EntryError{Kind: ErrIntegrity, Path: m.Archive.File, Reason: msg}
}

// checkHeader refuses entries that could write outside the target or that a
// backup never holds.
func checkHeader(hdr *tar.Header, name string, symlinks map[string]bool) error {
	if err := manifest.CheckPath(name); err != nil {
		return unsafeEntry(hdr.Name, "%v", err)
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if symlinks[dir] {
			return unsafeEntry(name, "lies beneath the symlink %s", dir)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir:
		return nil
	case tar.TypeSymlink:
		target := hdr.Linkname
		if target == "" {
			return unsafeEntry(name, "symlink with an empty target")
		}
		if strings.HasPrefix(target, "/") {
			return unsafeEntry(name, "symlink to the absolute path %q", target)
		}
		resolved := path.Join(path.Dir(name), target) // #nosec G305 -- every entry name is checked by safePath (absolute, .., links) before use
		if resolved == ".." || strings.HasPrefix(resolved, "../") {
			return unsafeEntry(name, "symlink %q escapes the restore root", target)
		}
		return nil
	case tar.TypeLink:
		return unsafeEntry(name, "hard link to %q (backups never hold hard links)", hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		return unsafeEntry(name, "device node")
	case tar.TypeFifo:
		return unsafeEntry(name, "FIFO")
	default:
		return unsafeEntry(name, "unsupported tar entry type %q", hdr.Typeflag)
	}
}

func headerType(hdr *tar.Header) string {
	switch hdr.Typeflag {
	case tar.TypeDir:
		return manifest.TypeDir
	case tar.TypeSymlink:
		return manifest.TypeSymlink
	default:
		return manifest.TypeFile
	}
}

type hashingReader struct {
	r   io.Reader
	h   interface{ Write([]byte) (int, error) }
	n   int64
	err error // the first read error other than io.EOF
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n]) // #nosec G104 -- hash.Hash.Write never returns an error
	h.n += int64(n)
	if err != nil && err != io.EOF && h.err == nil {
		h.err = err
	}
	return n, err
}

// Verify reads the whole archive stream r and checks it against m. It returns
// an error wrapping ErrIntegrity or ErrUnsafe when the archive cannot be
// trusted.
func Verify(ctx context.Context, r io.Reader, m *manifest.Manifest, progress func(Progress)) (*Report, error) {
	return walk(ctx, r, m, true, false, progress, func(*tar.Header, string, manifest.Entry, io.Reader) error { return nil })
}

// VerifyWritten is the read-back of an archive Create just wrote: it checks
// what Verify checks (every entry against m, every file's size and SHA-256,
// every gzip member's header, CRC-32 and size, the stream's size) but does
// not hash the stream again, as Create computed its SHA-256 over the same
// bytes on their way to the file. A member copied from the previous backup
// was inflated and checked when that backup, or the one it was copied from,
// was verified: here its bytes are compared with its SHA-256 in the table,
// not inflated again. A byte that differs on disk fails the member or the
// entry it belongs to. Any later read (Verify, Extract) checks the
// archive's SHA-256 and inflates every member.
func VerifyWritten(ctx context.Context, r io.Reader, m *manifest.Manifest, progress func(Progress)) (*Report, error) {
	return walk(ctx, r, m, false, true, progress, func(*tar.Header, string, manifest.Entry, io.Reader) error { return nil })
}

// IsIntegrity reports whether err says the archive cannot be trusted.
func IsIntegrity(err error) bool {
	return errors.Is(err, ErrIntegrity) || errors.Is(err, ErrUnsafe)
}
