package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// Progress is reported while an archive is created, verified or extracted.
type Progress struct {
	Files int
	Bytes int64
	Path  string
	// Reused is how many of Bytes were copied from the previous backup.
	Reused int64 `json:",omitempty"`
}

// ExtraFile is a file stored in the archive under a fixed name, such as the
// database dump.
type ExtraFile struct {
	ArchivePath string // slash-separated, relative
	Source      string // file to read
	// Wait, if set, is called when the tree is written and before Source is
	// opened; it returns once Source is complete. It lets the database dump
	// run beside the archive and be appended at the end.
	Wait func(context.Context) error
}

// DefaultLevel is the deflate level of archives. On the reference data
// (make bench), against gzip -6: level 5 is 1.5 % larger, level 4 is 2.1 %
// larger and compresses in a fifth less time than 5, level 3 is 2.7 % larger,
// too close to the 3 % the project allows.
const DefaultLevel = 4

// HuffmanOnly is the fastest compression that still compresses: no search
// for repeated strings, only Huffman coding of the bytes (flate level -2).
// On the reference data (make bench) the archive is about 22 % larger than
// at level 4, and text compresses about three times faster; reading it back
// costs more than level 4 (every byte is a symbol to decode).
const HuffmanOnly = -2

// Stored writes the data uncompressed, in deflate's stored blocks: still a
// gzip stream that every reader takes, written and read back at the cost of
// the hashing alone. Emergency backups use it: a restore waits for them. On
// the reference data, against HuffmanOnly, creating one takes 1.8 CPU
// seconds instead of 2.1 and reading it back 1.7 instead of 3.1, for an
// archive 1.2 times larger (the tree's own size).
const Stored = -100

// CreateOptions says what to archive.
type CreateOptions struct {
	// Root is the directory that archive paths are relative to.
	Root string
	// Paths are the slash-separated paths under Root to archive, recursively.
	Paths []string
	// AllowMissing records a missing path as a warning instead of failing
	// (an emergency backup of a tree that was deleted).
	AllowMissing bool
	// Extra files are appended after the tree.
	Extra []ExtraFile
	// Level is the deflate level, 1 (fastest) to 9, HuffmanOnly or Stored;
	// 0 means DefaultLevel.
	Level int
	// Progress, if set, is called after every file and at least every 8 MiB.
	Progress func(Progress)
	// Previous, if set, is the backup to copy the members of unchanged
	// files from; without it every file is read.
	Previous *Previous
}

// Result describes a created archive.
type Result struct {
	Entries  []manifest.Entry
	Extra    []manifest.Entry
	Warnings []manifest.Warning
	// SHA256 and Size are those of the compressed archive as written.
	SHA256 string
	Size   int64
	// TotalBytes is the sum of the file sizes stored.
	TotalBytes int64
	// Members is the member table, and what was reused.
	Members *manifest.Members
}

// Create writes a tar.gz of opts.Paths (and opts.Extra) to w, hashing every
// file as it is read and the compressed stream as it is written. A file that
// changes size or vanishes while it is read is recorded as a warning; what is
// stored and hashed is always consistent with the manifest entries returned.
// Members of unchanged files are copied from opts.Previous, each checked
// against its SHA-256; one that does not match is written afresh from the
// file, with a warning.
func Create(ctx context.Context, w io.Writer, opts CreateOptions) (*Result, error) {
	out := newCountingHasher(w)
	level := opts.Level
	if level == 0 {
		level = DefaultLevel
	}
	flateLevel := level
	if level == Stored {
		flateLevel = flate.NoCompression
	}
	gz, err := newMemberWriter(out, flateLevel, runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, fmt.Errorf("gzip writer: %w", err)
	}
	defer gz.Abort() // on failure; nothing once closed
	c := &creator{
		ctx:   ctx,
		mw:    gz,
		tw:    tar.NewWriter(gz),
		opts:  opts,
		buf:   make([]byte, 256<<10),
		res:   &Result{},
		reuse: newReuse(opts.Previous),
	}
	c.res.Members = &manifest.Members{Layout: MemberLayout, Level: level, FullRead: c.reuse == nil}
	if c.reuse != nil {
		c.res.Members.LastFullRead = c.reuse.man.Members.LastFullRead
	}
	for _, p := range opts.Paths {
		if err := manifest.CheckPath(p); err != nil {
			return nil, fmt.Errorf("backup path %q: %w", p, err)
		}
		if err := c.addTree(p); err != nil {
			return nil, err
		}
		if err := c.endGroup(); err != nil {
			return nil, err
		}
	}
	for _, x := range opts.Extra {
		gz.pieces(len(c.res.Entries) + len(c.res.Extra))
		e, err := c.addExtra(x)
		if err != nil {
			return nil, err
		}
		if err := c.endMember(span{}); err != nil {
			return nil, err
		}
		c.res.Extra = append(c.res.Extra, e)
	}
	if err := c.tw.Close(); err != nil {
		return nil, fmt.Errorf("finish tar stream: %w", err)
	}
	// The tar trailer is a member of its own, holding no entry.
	if err := gz.Close(span{first: len(c.res.Entries) + len(c.res.Extra)}); err != nil {
		return nil, fmt.Errorf("finish gzip stream: %w", err)
	}
	c.res.SHA256 = out.Sum()
	c.res.Size = out.n
	c.res.Members.List = gz.table
	return c.res, nil
}

type creator struct {
	ctx   context.Context
	mw    *memberWriter
	tw    *tar.Writer
	opts  CreateOptions
	buf   []byte
	res   *Result
	files int
	bytes int64
	last  int64
	reuse *reuse
	// group is the run of small records not yet written, and its size.
	group      []item
	groupBytes int64
}

// item is a path found by the walk, described by its lstat.
type item struct {
	full, name string
	info       fs.FileInfo
}

func (c *creator) warn(p, format string, args ...any) {
	c.res.Warnings = append(c.res.Warnings, manifest.Warning{Path: p, Message: fmt.Sprintf(format, args...)})
}

func (c *creator) progress(p string, force bool) {
	if c.opts.Progress == nil {
		return
	}
	if force || c.bytes-c.last >= 8<<20 {
		c.last = c.bytes
		c.opts.Progress(Progress{Files: c.files, Bytes: c.bytes, Path: p, Reused: c.res.Members.ReusedBytes})
	}
}

func (c *creator) addTree(rel string) error {
	top := filepath.Join(c.opts.Root, filepath.FromSlash(rel))
	if _, err := os.Lstat(top); err != nil {
		if errors.Is(err, fs.ErrNotExist) && c.opts.AllowMissing {
			c.warn(rel, "path does not exist; nothing archived")
			return nil
		}
		return fmt.Errorf("backup path %s: %w", top, err)
	}
	return filepath.WalkDir(top, func(full string, d fs.DirEntry, err error) error {
		if cerr := c.ctx.Err(); cerr != nil {
			return cerr
		}
		relPath, rerr := filepath.Rel(c.opts.Root, full)
		if rerr != nil {
			return fmt.Errorf("archive %s: %w", full, rerr)
		}
		name := filepath.ToSlash(relPath)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && full != top {
				c.warn(name, "vanished while the backup ran; not archived")
				return nil
			}
			return fmt.Errorf("archive %s: %w", full, err)
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				c.warn(name, "vanished while the backup ran; not archived")
				return nil
			}
			return fmt.Errorf("archive %s: %w", full, err)
		}
		it := item{full: full, name: name, info: info}
		rec := int64(512)
		switch {
		case entryType(info.Mode()) == "":
			c.warn(name, "not a regular file, directory or symlink (%s); not archived", info.Mode().Type())
			return nil
		case info.Mode().IsRegular() && info.Size() >= pieceFile:
			if err := c.endGroup(); err != nil {
				return err
			}
			return c.addLarge(it)
		case info.Mode().IsRegular():
			rec = recordSize(info.Size())
		}
		c.group = append(c.group, it)
		c.groupBytes += rec
		if endsGroup(name, rec, c.groupBytes) {
			return c.endGroup()
		}
		return nil
	})
}

// endGroup writes the group of small records as one member: copied from the
// previous archive if it holds exactly these records and none changed,
// otherwise read and compressed.
func (c *creator) endGroup() error {
	items := c.group
	c.group, c.groupBytes = c.group[:0], 0
	if len(items) == 0 {
		return nil
	}
	first := len(c.res.Entries)
	if c.reuse != nil {
		if m, j, ok := c.reuse.group(items); ok {
			buf := c.mw.rawBuffer(int(m.Length))
			sums, err := c.reuse.read(buf, m)
			if err == nil {
				c.mw.submitRaw(len(buf), sums, span{first: first, count: len(items)})
				c.reused(c.reuse.man.Files[j:j+len(items)], 1)
				return nil
			}
			c.warn(items[0].name, "not copied from the previous backup, read afresh with the %d paths after it in its member: %v", len(items)-1, err)
		}
	}
	g := readGroup(c.ctx, items)
	defer g.close()
	for i, it := range items {
		var err error
		if it.info.Mode().IsRegular() {
			err = c.addRead(it.full, it.name, g.file(i))
		} else {
			err = c.addEntry(it.full, it.name, it.info)
		}
		if err != nil {
			return err
		}
	}
	return c.endMember(span{first: first, count: len(c.res.Entries) - first})
}

// addLarge writes a large file in pieces: copied from the previous archive
// if the file is unchanged, otherwise read. Each piece is checked as it is
// copied; a damaged first piece is replaced by reading the file, but one
// found after others were written cannot be, and ends the archive with a
// DamagedPreviousError (CreateFile then starts again, reading every file).
func (c *creator) addLarge(it item) error {
	entry := len(c.res.Entries)
	if c.reuse != nil {
		if ms, j, ok := c.reuse.pieces(it); ok {
			copied, err := c.copyPieces(entry, ms)
			switch {
			case err == nil:
				c.reused(c.reuse.man.Files[j:j+1], len(ms))
				return nil
			case c.ctx.Err() != nil:
				return c.ctx.Err()
			case copied > 0:
				return &DamagedPreviousError{Backup: c.reuse.id, Path: it.name, Err: err}
			}
			c.warn(it.name, "not copied from the previous backup, read afresh: %v", err)
		}
	}
	c.mw.pieces(entry)
	if err := c.addFile(it.full, it.name); err != nil {
		return err
	}
	return c.endMember(span{})
}

// copyPieces copies the members ms, the pieces of entry, and returns how
// many it copied before an error.
func (c *creator) copyPieces(entry int, ms []manifest.Member) (int, error) {
	for k, m := range ms {
		if err := c.ctx.Err(); err != nil {
			return k, err
		}
		buf := c.mw.rawBuffer(int(m.Length))
		sums, err := c.reuse.read(buf, m)
		if err != nil {
			return k, err
		}
		c.mw.submitRaw(len(buf), sums, span{first: entry, count: 1, piece: k + 1})
	}
	return len(ms), nil
}

// endMember pads the last record and ends the member holding s.
func (c *creator) endMember(s span) error {
	if err := c.tw.Flush(); err != nil {
		return fmt.Errorf("finish tar record: %w", err)
	}
	c.mw.cut(s)
	return nil
}

// reused records the entries of members copied from the previous backup.
func (c *creator) reused(entries []manifest.Entry, members int) {
	ms := c.res.Members
	ms.ReusedFrom = c.reuse.id
	ms.ReusedMembers += members
	for _, e := range entries {
		c.res.Entries = append(c.res.Entries, e)
		if e.Type == manifest.TypeFile {
			c.res.TotalBytes += e.Size
			ms.ReusedBytes += e.Size
			c.bytes += e.Size
			c.files++
		}
	}
	c.progress(entries[len(entries)-1].Path, true)
}

// describe returns the tar header and manifest entry for a path, without
// the type-specific fields.
func describe(name string, info fs.FileInfo) (*tar.Header, manifest.Entry) {
	mtime := info.ModTime().Truncate(time.Second).UTC()
	perm := uint32(tarMode(info.Mode())) // #nosec G115 -- bounded by the tar and gzip formats (modes are 12 bits, sizes checked against the manifest)
	hdr := &tar.Header{Name: name, ModTime: mtime, Mode: int64(perm)}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
	}
	e := manifest.Entry{Path: name, Mode: perm, ModTime: mtime}
	identity(&e, info)
	return hdr, e
}

func (c *creator) addEntry(full, name string, info fs.FileInfo) error {
	hdr, entry := describe(name, info)
	switch {
	case info.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		entry.Type = manifest.TypeDir
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(full)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				c.warn(name, "vanished while the backup ran; not archived")
				return nil
			}
			return fmt.Errorf("archive %s: %w", full, err)
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
		entry.Type = manifest.TypeSymlink
		entry.Link = target
	case info.Mode().IsRegular():
		return c.addFile(full, name)
	default:
		c.warn(name, "not a regular file, directory or symlink (%s); not archived", info.Mode().Type())
		return nil
	}
	if err := c.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	c.res.Entries = append(c.res.Entries, entry)
	return nil
}

// openFile opens a file of the tree without following a symlink, so that a
// file replaced by a link while the backup runs is never followed, and
// stats the open file. A file no longer there to archive gives instead the
// warning to record.
func openFile(full string) (f *os.File, st fs.FileInfo, skip string, err error) {
	f, err = os.OpenFile(full, os.O_RDONLY|syscall.O_NOFOLLOW, 0) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, "vanished while the backup ran; not archived", nil
	case errors.Is(err, syscall.ELOOP):
		return nil, nil, "replaced by a symlink while the backup ran; not archived", nil
	case err != nil:
		return nil, nil, "", fmt.Errorf("archive %s: %w", full, err)
	}
	if st, err = f.Stat(); err != nil {
		f.Close() // #nosec G104 -- read-only; the error that matters is returned
		return nil, nil, "", fmt.Errorf("archive %s: %w", full, err)
	}
	if !st.Mode().IsRegular() {
		f.Close() // #nosec G104 -- read-only, nothing read
		return nil, nil, fmt.Sprintf("replaced by a %s while the backup ran; not archived", st.Mode().Type()), nil
	}
	return f, st, "", nil
}

// fileHeader writes the tar header of the regular file name, described by
// st, and returns its manifest entry.
func (c *creator) fileHeader(name string, st fs.FileInfo) (manifest.Entry, error) {
	hdr, entry := describe(name, st)
	hdr.Typeflag = tar.TypeReg
	hdr.Size = st.Size()
	if err := c.tw.WriteHeader(hdr); err != nil {
		return entry, fmt.Errorf("archive %s: %w", name, err)
	}
	return entry, nil
}

// fileStored records a regular file whose st.Size() bytes were stored, n
// of them read from it (the rest zero-filled), with the SHA-256 sum: the
// warnings for a file that shrank, grew or changed while it was read, and
// its entry.
func (c *creator) fileStored(name string, entry manifest.Entry, st fs.FileInfo, n int64, grew, changed bool, sum []byte) {
	size := st.Size()
	warnings := len(c.res.Warnings)
	switch {
	case n < size:
		c.warn(name, "shrank from %d to %d bytes while being read; archived with the missing %d bytes zero-filled", size, n, size-n)
	case grew:
		c.warn(name, "grew while being read; archived its first %d bytes", size)
	case changed:
		c.warn(name, "changed while being read; archived content may mix old and new data")
	}
	if len(c.res.Warnings) > warnings {
		// What was stored is not the file as it now is: never reuse it.
		entry.Dev, entry.Inode, entry.MTimeNS, entry.CTimeNS = 0, 0, 0, 0
	}
	entry.Type = manifest.TypeFile
	entry.Size = size
	entry.SHA256 = hex.EncodeToString(sum)
	c.res.Entries = append(c.res.Entries, entry)
	c.res.TotalBytes += size
	c.files++
	c.progress(name, false)
}

// addFile streams a regular file into the archive, described by the open
// file itself. If the file then shrinks the rest is zero-filled, if it grows
// only the first Size bytes are stored, and both are recorded as warnings.
func (c *creator) addFile(full, name string) error {
	f, st, skip, err := openFile(full)
	if skip != "" || err != nil {
		if skip != "" {
			c.warn(name, "%s", skip)
		}
		return err
	}
	defer f.Close()
	return c.streamFile(full, name, f, st)
}

// streamFile streams the open regular file f, described by st, as addFile
// does.
func (c *creator) streamFile(full, name string, f *os.File, st fs.FileInfo) error {
	entry, err := c.fileHeader(name, st)
	if err != nil {
		return err
	}
	size := st.Size()
	h := sha256.New()
	n, grew, err := c.copyN(io.MultiWriter(c.tw, h), f, size, name)
	if err != nil {
		return fmt.Errorf("archive %s: %w", full, err)
	}
	changed := false
	if n < size {
		if _, err := c.zeroFill(io.MultiWriter(c.tw, h), size-n); err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
	} else if st2, err := f.Stat(); !grew && err == nil && !st2.ModTime().Equal(st.ModTime()) {
		changed = true
	}
	c.fileStored(name, entry, st, n, grew, changed, h.Sum(nil))
	return nil
}

// addRead stores a small file that a group reader has read whole, or
// streams one that had become large.
func (c *creator) addRead(full, name string, f *smallFile) error {
	if f.skip != "" || f.err != nil {
		if f.skip != "" {
			c.warn(name, "%s", f.skip)
		}
		return f.err
	}
	if f.open != nil {
		defer func() {
			f.open.Close() // #nosec G104 -- read-only; the error that matters is returned
			f.open = nil
		}()
		return c.streamFile(full, name, f.open, f.st)
	}
	entry, err := c.fileHeader(name, f.st)
	if err != nil {
		return err
	}
	if _, err := c.tw.Write(f.data); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	n := int64(len(f.data))
	c.bytes += n
	if n < f.st.Size() {
		if _, err := c.zeroFill(c.tw, f.st.Size()-n); err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
	}
	c.fileStored(name, entry, f.st, n, f.grew, f.changed, f.sum[:])
	return nil
}

func (c *creator) addExtra(x ExtraFile) (manifest.Entry, error) {
	if err := manifest.CheckPath(x.ArchivePath); err != nil {
		return manifest.Entry{}, fmt.Errorf("extra file %q: %w", x.ArchivePath, err)
	}
	if x.Wait != nil {
		if err := x.Wait(c.ctx); err != nil {
			return manifest.Entry{}, fmt.Errorf("archive %s: %w", x.ArchivePath, err)
		}
	}
	f, err := os.Open(x.Source)
	if err != nil {
		return manifest.Entry{}, fmt.Errorf("archive %s: %w", x.Source, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return manifest.Entry{}, fmt.Errorf("archive %s: %w", x.Source, err)
	}
	mtime := st.ModTime().Truncate(time.Second).UTC()
	// Directory entries for the extra file's parents keep `tar -xzf` happy.
	for dir := path.Dir(x.ArchivePath); dir != "."; dir = path.Dir(dir) {
		if err := c.tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o700, ModTime: mtime}); err != nil {
			return manifest.Entry{}, fmt.Errorf("archive %s: %w", dir, err)
		}
	}
	hdr := &tar.Header{Name: x.ArchivePath, Typeflag: tar.TypeReg, Size: st.Size(), Mode: 0o600, ModTime: mtime}
	if err := c.tw.WriteHeader(hdr); err != nil {
		return manifest.Entry{}, fmt.Errorf("archive %s: %w", x.ArchivePath, err)
	}
	h := sha256.New()
	n, grew, err := c.copyN(io.MultiWriter(c.tw, h), f, st.Size(), x.ArchivePath)
	if err != nil {
		return manifest.Entry{}, fmt.Errorf("archive %s: %w", x.Source, err)
	}
	if n != st.Size() {
		return manifest.Entry{}, fmt.Errorf("archive %s: file shrank from %d to %d bytes while being read", x.Source, st.Size(), n)
	}
	if grew {
		return manifest.Entry{}, fmt.Errorf("archive %s: file grew beyond %d bytes while being read", x.Source, n)
	}
	c.res.TotalBytes += n
	c.files++
	c.progress(x.ArchivePath, true)
	return manifest.Entry{Path: x.ArchivePath, Type: manifest.TypeFile, Size: n, Mode: 0o600, ModTime: mtime, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// copyN copies at most n bytes of the file r to w and returns how many it
// copied (reaching EOF early is not an error), and whether r holds more than
// n. The last read asks for one byte more than is left: a regular file that
// returns less is at its end, so a small file takes one read, not two.
func (c *creator) copyN(w io.Writer, r io.Reader, n int64, name string) (done int64, grew bool, err error) {
	for {
		if err := c.ctx.Err(); err != nil {
			return done, false, err
		}
		rem := n - done
		chunk := c.buf
		if rem < int64(len(chunk)) {
			chunk = chunk[:rem+1]
		}
		k, err := r.Read(chunk)
		if int64(k) > rem {
			k, grew = int(rem), true
		}
		if k > 0 {
			if _, werr := w.Write(chunk[:k]); werr != nil {
				return done, false, werr
			}
			done += int64(k)
			c.bytes += int64(k)
			c.progress(name, false)
		}
		switch {
		case err == io.EOF, grew:
			return done, grew, nil
		case err != nil:
			return done, false, err
		case len(chunk) == int(rem+1) && k < len(chunk):
			return done, false, nil // a short last read: the end of the file
		}
	}
}

func (c *creator) zeroFill(w io.Writer, n int64) (int64, error) {
	clear(c.buf)
	var done int64
	for done < n {
		k := min(int64(len(c.buf)), n-done)
		if _, err := w.Write(c.buf[:k]); err != nil {
			return done, err
		}
		done += k
	}
	return done, nil
}

// tarMode maps a Go file mode to the tar header mode bits.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// fileMode maps Unix mode bits (permissions plus setuid, setgid, sticky), as
// the manifest and tar headers hold them, to a Go file mode.
func fileMode(bits uint32) fs.FileMode {
	m := fs.FileMode(bits & 0o777)
	if bits&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if bits&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if bits&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// countingHasher hashes (unless h is nil) and counts what passes through to
// w.
type countingHasher struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newCountingHasher(w io.Writer) *countingHasher {
	return &countingHasher{w: w, h: sha256.New()}
}

func (c *countingHasher) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if c.h != nil {
		c.h.Write(p[:n])
	}
	c.n += int64(n)
	return n, err
}

// Sum returns the hex SHA-256 of everything written.
func (c *countingHasher) Sum() string { return hex.EncodeToString(c.h.Sum(nil)) }
