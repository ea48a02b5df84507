package archive

import (
	"errors"
	"io"
)

// hashAhead reads r on a goroutine of its own, in chunks, hashing every byte
// into h, and hands the chunks to Read. Hashing the compressed stream thus
// overlaps with decompressing and checking it. h may be read once Read has
// returned io.EOF (or another error); Close stops the goroutine early.
type hashAhead struct {
	h     *countingHasher
	full  chan []byte // read and hashed, in order
	empty chan []byte // free chunks
	stop  chan struct{}
	err   error // the read error, set before full is closed
	chunk []byte
	cur   []byte
}

const (
	aheadChunks    = 4
	aheadChunkSize = 1 << 20
)

func newHashAhead(r io.Reader, h *countingHasher) *hashAhead {
	a := &hashAhead{h: h, full: make(chan []byte, aheadChunks), empty: make(chan []byte, aheadChunks), stop: make(chan struct{})}
	for range aheadChunks {
		a.empty <- make([]byte, aheadChunkSize)
	}
	go a.run(r)
	return a
}

func (a *hashAhead) run(r io.Reader) {
	defer close(a.full)
	for {
		var b []byte
		select {
		case b = <-a.empty:
		case <-a.stop:
			return
		}
		n, err := io.ReadFull(r, b)
		if n > 0 {
			a.h.Write(b[:n])
			select {
			case a.full <- b[:n]:
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

// Read returns the next bytes of r, already hashed.
func (a *hashAhead) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.chunk != nil {
			a.empty <- a.chunk[:cap(a.chunk)] // never blocks: at most aheadChunks exist
			a.chunk = nil
		}
		b, ok := <-a.full
		if !ok {
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

// Close stops the reading goroutine; call it once, when done.
func (a *hashAhead) Close() { close(a.stop) }
