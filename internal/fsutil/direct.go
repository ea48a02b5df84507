package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"unsafe"
)

// DirectAlign is the alignment of every transfer around the page cache: the
// buffer's address, its length and the file offset. 4096 satisfies every
// common device (512-byte and 4 KiB logical blocks); a device that wants
// more refuses the transfer with EINVAL, and the file is then read or
// written through the page cache instead.
const DirectAlign = 4096

// DirectChunk is how many bytes a DirectWriter gathers before it writes them.
const DirectChunk = 4 << 20

// AlignedBuffer returns a zeroed buffer of n bytes whose address is a
// multiple of DirectAlign.
func AlignedBuffer(n int) []byte {
	b := make([]byte, n+DirectAlign)
	skip := (DirectAlign - int(uintptr(unsafe.Pointer(&b[0]))&(DirectAlign-1))) & (DirectAlign - 1) // #nosec G103 -- aligned buffer for O_DIRECT: the pointer is only read for its address
	return b[skip : skip+n : skip+n]
}

// aligned reports whether p can be transferred around the page cache as it
// is: an address and a length that are multiples of DirectAlign.
func aligned(p []byte) bool {
	return len(p) >= DirectAlign && len(p)%DirectAlign == 0 && uintptr(unsafe.Pointer(&p[0]))%DirectAlign == 0 // #nosec G103 -- aligned buffer for O_DIRECT: the pointer is only read for its address
}

// DirectWriter writes a new file around the page cache (O_DIRECT) where the
// file system allows it: the bytes go from the writer's buffer to the
// device, and no page of the cache is taken for them. A large archive then
// costs no memory the kernel must find, fill and later evict; on machines
// where fresh memory is expensive to touch (virtual machines that hand free
// memory back to their host) that is most of the cost of writing it.
// Where O_DIRECT is refused, it writes through the page cache and starts
// writeback every WritebackEvery bytes, as WritebackWriter does.
//
// Sync writes what is still gathered and fsyncs the file: the caller must
// call it, once, before it trusts the file; nothing may be written after it.
//
// A full chunk is written on a goroutine of its own while the caller fills a
// second buffer: a direct write waits for the device, and the caller (an
// archive's hashing, an extraction's inflating) goes on meanwhile. The error
// of such a write is returned by a later Write, Finish or Sync.
type DirectWriter struct {
	f        *os.File
	direct   bool
	buf      []byte // aligned, DirectChunk bytes; nil when not direct
	n        int    // bytes gathered in buf
	spare    []byte // the second buffer while none is in flight
	pooled   []byte // the buffer taken from chunkPool, which release hands back
	inflight chan chunkWritten
	wb       *WritebackWriter
	synced   bool
	err      error // the first write error; every later call returns it
}

// chunkWritten is the outcome of a chunk written in the background.
type chunkWritten struct {
	buf []byte
	n   int
	err error
}

// chunkPool holds the second buffers of DirectWriters.
var chunkPool = sync.Pool{New: func() any { b := AlignedBuffer(DirectChunk); return &b }}

// CreateDirect creates or truncates name for writing, around the page cache
// where the file system allows it.
func CreateDirect(name string, perm os.FileMode) (*DirectWriter, error) {
	return createDirect(name, perm, oDirect)
}

// createDirect is CreateDirect with the open flag for direct I/O given: 0
// writes through the page cache, as where O_DIRECT is refused.
func createDirect(name string, perm os.FileMode, direct int) (*DirectWriter, error) {
	const flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if direct != 0 {
		f, err := os.OpenFile(name, flags|direct, perm) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
		if err == nil {
			return &DirectWriter{f: f, direct: true, buf: AlignedBuffer(DirectChunk)}, nil
		}
		if !isInvalid(err) {
			return nil, err
		}
	}
	f, err := os.OpenFile(name, flags, perm) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return nil, err
	}
	return &DirectWriter{f: f, wb: NewWritebackWriter(f)}, nil
}

// DirectFlag is the open flag for transfers around the page cache (O_DIRECT),
// or 0 where the system has none.
const DirectFlag = oDirect

// IsDirectRefused reports whether err, from an open with DirectFlag, is the
// file system refusing direct I/O: open the file again without the flag.
func IsDirectRefused(err error) bool { return isInvalid(err) }

// NewDirectWriter returns a DirectWriter for f, a new file opened for
// writing at offset 0, with DirectFlag when direct is true. buf, if not nil,
// is an AlignedBuffer of DirectChunk bytes to gather in: one buffer can serve
// one file after another.
func NewDirectWriter(f *os.File, direct bool, buf []byte) *DirectWriter {
	if !direct {
		return &DirectWriter{f: f, wb: NewWritebackWriter(f)}
	}
	if len(buf) != DirectChunk || !aligned(buf) {
		buf = AlignedBuffer(DirectChunk)
	}
	return &DirectWriter{f: f, direct: true, buf: buf}
}

// Direct reports whether the writer still writes around the page cache.
func (w *DirectWriter) Direct() bool { return w.direct }

// Write gathers p and writes every full chunk.
func (w *DirectWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.synced {
		return 0, errors.New("write after sync")
	}
	if !w.direct {
		if w.n > 0 { // gathered before direct writing ended
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
		n, err := w.wb.Write(p)
		w.err = err
		return n, err
	}
	done := 0
	for len(p) > 0 {
		k := copy(w.buf[w.n:], p)
		w.n += k
		done += k
		p = p[k:]
		if w.n == len(w.buf) {
			if err := w.flush(); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// flush writes the gathered bytes: the whole blocks around the page cache,
// a last part shorter than a block through it (which ends direct writing).
// A full chunk is written in the background (see DirectWriter).
func (w *DirectWriter) flush() error {
	if err := w.wait(); err != nil {
		return err
	}
	if w.direct && w.n == DirectChunk && len(w.buf) == DirectChunk {
		if w.spare == nil {
			w.spare = *chunkPool.Get().(*[]byte)
			w.pooled = w.spare
		}
		full := w.buf
		w.buf, w.spare, w.n = w.spare, nil, 0
		w.inflight = make(chan chunkWritten, 1)
		go func(f *os.File, done chan<- chunkWritten) {
			n, err := f.Write(full)
			done <- chunkWritten{full, n, err}
		}(w.f, w.inflight)
		return nil
	}
	whole := w.n &^ (DirectAlign - 1)
	if err := w.writeAll(w.buf[:whole]); err != nil {
		w.err = err
		return err
	}
	if rest := w.buf[whole:w.n]; len(rest) > 0 {
		if err := w.buffered(); err != nil {
			w.err = err
			return err
		}
		if _, err := w.wb.Write(rest); err != nil {
			w.err = err
			return err
		}
	}
	w.n = 0
	return nil
}

// wait waits for the chunk written in the background, if any, and finishes
// it the way writeAll would: what the device refused or left unaligned goes
// on through the cache.
func (w *DirectWriter) wait() error {
	if w.inflight == nil {
		return w.err
	}
	r := <-w.inflight
	w.inflight = nil
	w.spare = r.buf
	if w.err != nil {
		return w.err
	}
	rest := r.buf[max(r.n, 0):]
	switch {
	case r.err != nil && !isInvalid(r.err):
		w.err = r.err
	case len(rest) > 0:
		// Refused (EINVAL) or cut short at an unaligned offset.
		w.err = w.buffered()
		if w.err == nil {
			_, w.err = w.wb.Write(rest)
		}
	}
	return w.err
}

// release hands the buffer taken from the pool back once nothing is in
// flight, and only that one: the two buffers trade places at every chunk,
// and the other may be the caller's, which it goes on using for the next
// file. The writer writes nothing afterwards.
func (w *DirectWriter) release() {
	if w.inflight == nil && w.pooled != nil {
		b := w.pooled
		w.pooled, w.spare, w.buf = nil, nil, nil
		chunkPool.Put(&b)
	}
}

// writeAll writes p, a whole number of aligned blocks, at the file's offset.
// A transfer the device refuses (EINVAL) and a short write that leaves the
// offset unaligned both end direct writing; the rest goes through the cache.
func (w *DirectWriter) writeAll(p []byte) error {
	for len(p) > 0 {
		if !w.direct {
			_, err := w.wb.Write(p)
			return err
		}
		n, err := w.f.Write(p)
		p = p[max(n, 0):]
		switch {
		case err != nil && isInvalid(err):
			if err := w.buffered(); err != nil {
				return err
			}
		case err != nil:
			return err
		case n%DirectAlign != 0:
			if err := w.buffered(); err != nil {
				return err
			}
		}
	}
	return nil
}

// buffered turns direct writing off for the rest of the file, once the chunk
// in flight, if any, is written.
func (w *DirectWriter) buffered() error {
	if w.inflight != nil {
		if err := w.wait(); err != nil {
			return err
		}
	}
	if !w.direct {
		return nil
	}
	if err := clearDirect(w.f); err != nil {
		return fmt.Errorf("turn off direct I/O: %w", err)
	}
	w.direct = false
	// Writeback is started from here on, for what is written from here on.
	pos, err := w.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	w.wb = &WritebackWriter{f: w.f, off: pos, flushed: pos}
	return nil
}

// ReadFrom reads r to its end straight into the gathering buffer, saving
// io.Copy a copy of every byte.
func (w *DirectWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.synced {
		return 0, errors.New("write after sync")
	}
	if !w.direct {
		return io.Copy(onlyWriter{w}, r)
	}
	var done int64
	for {
		n, err := r.Read(w.buf[w.n:])
		w.n += n
		done += int64(n)
		if w.n == len(w.buf) {
			if ferr := w.flush(); ferr != nil {
				return done, ferr
			}
			if !w.direct { // direct writing ended in the flush
				k, err := io.Copy(onlyWriter{w}, r)
				return done + k, err
			}
		}
		if err == io.EOF {
			return done, nil
		}
		if err != nil {
			return done, err
		}
	}
}

// onlyWriter hides ReadFrom, so io.Copy does not call it again.
type onlyWriter struct{ w *DirectWriter }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// Finish writes what is gathered, without an fsync: for a caller that
// syncs the whole file system afterwards. It ends writing.
func (w *DirectWriter) Finish() error {
	if w.err != nil {
		return w.err
	}
	w.synced = true
	if w.n > 0 {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if err := w.wait(); err != nil {
		return err
	}
	w.release()
	if w.wb != nil {
		w.wb.StartRest() // the disk starts on the cached part now
	}
	return nil
}

// Sync writes what is gathered and fsyncs the file. It ends writing.
func (w *DirectWriter) Sync() error {
	if err := w.Finish(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Close closes the file, once a chunk in flight is written. Without a Sync
// first, what is gathered is lost.
func (w *DirectWriter) Close() error {
	if w.inflight != nil {
		_ = w.wait()
	}
	w.release()
	return w.f.Close()
}

// DirectReader reads a file around the page cache (O_DIRECT) where the file
// system allows it, so the bytes come from the device, not from the copy
// the kernel may still hold of what was written. It reads straight into the
// caller's buffer when that buffer is aligned (see AlignedBuffer) and
// through a buffer of its own otherwise. Where O_DIRECT is refused, or a
// transfer is, it reads through the page cache.
type DirectReader struct {
	f      *os.File
	direct bool
	buf    []byte // aligned; allocated on the first unaligned read
	cur    []byte // read but not yet returned
}

// OpenDirect opens name for reading, around the page cache where the file
// system allows it.
func OpenDirect(name string) (*DirectReader, error) {
	return openDirect(name, oDirect)
}

// openDirect is OpenDirect with the open flag for direct I/O given: 0 reads
// through the page cache, as where O_DIRECT is refused.
func openDirect(name string, direct int) (*DirectReader, error) {
	if direct != 0 {
		f, err := os.OpenFile(name, os.O_RDONLY|direct, 0) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
		if err == nil {
			return &DirectReader{f: f, direct: true}, nil
		}
		if !isInvalid(err) {
			return nil, err
		}
	}
	f, err := os.Open(name) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return nil, err
	}
	return &DirectReader{f: f}, nil
}

// Direct reports whether the reader still reads around the page cache.
func (r *DirectReader) Direct() bool { return r.direct }

// Read reads up to len(p) bytes.
func (r *DirectReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.cur) > 0 {
		n := copy(p, r.cur)
		r.cur = r.cur[n:]
		return n, nil
	}
	if !r.direct {
		return r.f.Read(p)
	}
	if aligned(p) {
		return r.read(p)
	}
	if r.buf == nil {
		r.buf = AlignedBuffer(1 << 20)
	}
	n, err := r.read(r.buf)
	r.cur = r.buf[:n]
	k := copy(p, r.cur)
	r.cur = r.cur[k:]
	if k > 0 {
		return k, nil
	}
	return 0, err
}

// read reads into the aligned p; a transfer the device refuses is retried
// through the page cache, which then serves the rest of the file. A short
// read that is not the end of the file would leave the offset unaligned, so
// it also ends direct reading.
func (r *DirectReader) read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if err != nil && isInvalid(err) {
		if cerr := clearDirect(r.f); cerr != nil {
			return 0, fmt.Errorf("turn off direct I/O: %w", cerr)
		}
		r.direct = false
		return r.f.Read(p)
	}
	if err == nil && n%DirectAlign != 0 {
		if cerr := clearDirect(r.f); cerr != nil {
			return n, fmt.Errorf("turn off direct I/O: %w", cerr)
		}
		r.direct = false
	}
	return n, err
}

// Close closes the file.
func (r *DirectReader) Close() error { return r.f.Close() }

// DirectReaderAt reads an existing file at given offsets around the page
// cache where the file system allows it: the bytes come from the device
// into an aligned window of its own, and a read inside the window is served
// from it. Reads at rising offsets, as of an archive's members in order,
// cost one device transfer per window. Where O_DIRECT or a transfer is
// refused, it reads through the page cache. It is not safe for concurrent
// use.
type DirectReaderAt struct {
	f      *os.File
	direct bool
	window []byte // aligned; holds the file's bytes from start
	start  int64
	n      int // valid bytes in window
}

// directWindow is the size of a DirectReaderAt's window.
const directWindow = 8 << 20

// OpenDirectAt opens name for reading at offsets, around the page cache
// where the file system allows it.
func OpenDirectAt(name string) (*DirectReaderAt, error) {
	return openDirectAt(name, oDirect)
}

// openDirectAt is OpenDirectAt with the open flag for direct I/O given.
func openDirectAt(name string, direct int) (*DirectReaderAt, error) {
	r, err := openDirect(name, direct)
	if err != nil {
		return nil, err
	}
	return &DirectReaderAt{f: r.f, direct: r.direct}, nil
}

// Direct reports whether the reader still reads around the page cache.
func (r *DirectReaderAt) Direct() bool { return r.direct }

// Stat describes the open file.
func (r *DirectReaderAt) Stat() (os.FileInfo, error) { return r.f.Stat() }

// ReadAt reads len(p) bytes from off; as io.ReaderAt, it returns an error
// whenever it returns fewer.
func (r *DirectReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if !r.direct {
		return r.f.ReadAt(p, off)
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		if pos < r.start || pos >= r.start+int64(r.n) {
			if err := r.fill(pos, len(p)-done); err != nil {
				if !r.direct { // refused: the page cache serves the rest
					k, err := r.f.ReadAt(p[done:], pos)
					return done + k, err
				}
				return done, err
			}
			if pos >= r.start+int64(r.n) {
				return done, io.EOF
			}
		}
		done += copy(p[done:], r.window[pos-r.start:r.n])
	}
	return done, nil
}

// fill reads the aligned window holding pos, large enough for want bytes
// from it where the window allows.
func (r *DirectReaderAt) fill(pos int64, want int) error {
	start := pos &^ (DirectAlign - 1)
	size := max(directWindow, (int(pos-start)+want+DirectAlign-1)&^(DirectAlign-1))
	size = min(size, 64<<20)
	if cap(r.window) < size {
		r.window = AlignedBuffer(size)
	}
	buf := r.window[:cap(r.window)]
	r.start, r.n = start, 0
	for r.n < len(buf) {
		k, err := preadOnce(r.f, buf[r.n:], start+int64(r.n))
		r.n += k
		switch {
		case err == io.EOF:
			return nil
		case err != nil && isInvalid(err):
			if cerr := clearDirect(r.f); cerr != nil {
				return fmt.Errorf("turn off direct I/O: %w", cerr)
			}
			r.direct, r.n = false, 0
			return err
		case err != nil:
			r.n = 0
			return err
		case k%DirectAlign != 0:
			return nil // a short transfer: the end of the file
		}
	}
	return nil
}

// Close closes the file.
func (r *DirectReaderAt) Close() error { return r.f.Close() }
