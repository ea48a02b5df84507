package archive

import (
	"errors"
	"io"

	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
)

// hashAhead reads r ahead of its reader, in chunks, and hashes every byte
// into h: one goroutine reads (waiting on the disk when r reads around the
// page cache), another hashes (see countingHasher), and Read hands out the
// chunks in order.
// Reading, hashing the compressed stream and decompressing it thus overlap.
// The chunks are aligned (fsutil.AlignedBuffer), so an fsutil.DirectReader
// reads straight into them. h may be read once Read has returned io.EOF (or
// another error); Close stops the goroutines early.
type hashAhead struct {
	h     *countingHasher
	read  chan []byte // read, not yet hashed, in order
	full  chan []byte // read and hashed, in order
	empty chan []byte // free chunks
	stop  chan struct{}
	err   error // the read error, set before read is closed
	chunk []byte
	cur   []byte
}

const (
	aheadChunks    = 4
	aheadChunkSize = 4 << 20
)

func newHashAhead(r io.Reader, h *countingHasher) *hashAhead {
	a := &hashAhead{
		h:     h,
		read:  make(chan []byte, aheadChunks),
		full:  make(chan []byte, aheadChunks),
		empty: make(chan []byte, aheadChunks),
		stop:  make(chan struct{}),
	}
	for range aheadChunks {
		a.empty <- fsutil.AlignedBuffer(aheadChunkSize)
	}
	go a.reader(r)
	go a.hasher()
	return a
}

func (a *hashAhead) reader(r io.Reader) {
	defer close(a.read)
	for {
		var b []byte
		select {
		case b = <-a.empty:
		case <-a.stop:
			return
		}
		n, err := io.ReadFull(r, b)
		if n > 0 {
			select {
			case a.read <- b[:n]:
			case <-a.stop:
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				a.err = err
			}
			return
		}
	}
}

func (a *hashAhead) hasher() {
	defer close(a.full)
	for b := range a.read {
		a.h.Write(b) // #nosec G104 -- hash.Hash.Write never returns an error
		select {
		case a.full <- b:
		case <-a.stop:
			return
		}
	}
}

// Read returns the next bytes of r, already hashed.
func (a *hashAhead) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.chunk != nil {
			a.empty <- a.chunk[:cap(a.chunk)] // never blocks: at most aheadChunks exist
			a.chunk = nil
		}
		b, ok := <-a.full
		if !ok {
			// The reader closed read before the hasher closed full, so
			// err, set before that, is visible here.
			if a.err != nil {
				return 0, a.err
			}
			return 0, io.EOF
		}
		a.chunk, a.cur = b, b
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// Close stops the goroutines; call it once, when done.
func (a *hashAhead) Close() { close(a.stop) }
