package fsutil

import "os"

// WritebackEvery is how many bytes a WritebackWriter lets through before it
// asks the kernel to start writing them out.
const WritebackEvery = 8 << 20

// WritebackWriter writes to a file and, every WritebackEvery bytes, starts
// the kernel writing the bytes just written to disk, without waiting for it.
// The disk then works while the caller goes on computing, and the final
// fsync finds little left to do: a 500 MB archive no longer sits whole in
// the page cache until its fsync. It changes nothing about durability: the
// caller still fsyncs before it trusts the file.
type WritebackWriter struct {
	f       *os.File
	off     int64 // bytes written through this writer
	flushed int64 // bytes already handed to writeback
}

// NewWritebackWriter returns a WritebackWriter appending to f from its
// current offset, which must be 0 (a new file).
func NewWritebackWriter(f *os.File) *WritebackWriter {
	return &WritebackWriter{f: f}
}

// Write writes p to the file.
func (w *WritebackWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.flushed >= WritebackEvery {
		StartWriteback(w.f, w.flushed, w.off-w.flushed)
		w.flushed = w.off
	}
	return n, err
}

// StartRest starts the writeback of the bytes written since the last one
// started: for a file that is complete, ahead of a later fsync or syncfs.
func (w *WritebackWriter) StartRest() {
	if w.off > w.flushed {
		StartWriteback(w.f, w.flushed, w.off-w.flushed)
		w.flushed = w.off
	}
}
