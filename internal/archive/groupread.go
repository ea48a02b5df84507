package archive

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync"
	"sync/atomic"
)

// A group of small files (layout.go) is read ahead of the tar writer, by as
// many goroutines as there are cores: each opens, stats, reads and hashes
// files of the group whole, while the creator writes the ones already read,
// in order. Opening and reading thousands of small files costs more system
// time than compressing them, and on one goroutine it leaves the other cores
// idle. A group holds at most groupMax bytes plus one record of less than
// pieceFile, so reading it whole keeps the memory bounded.

// smallFile is one file of a group as a reader found it.
type smallFile struct {
	done chan struct{} // closed once the fields below are set
	// skip, if set, is the warning to record instead of the file (it
	// vanished, or is no longer a regular file).
	skip string
	st   fs.FileInfo
	// data is what was read, at most st.Size() bytes; a file that shrank
	// is stored with the missing bytes zero-filled, and sum covers them.
	data    []byte
	grew    bool // the file holds more than st.Size() bytes
	changed bool // its mtime moved while it was read
	sum     [sha256.Size]byte
	err     error
	buf     *[]byte // data's buffer, to give back
}

// groupReader reads the files of one group on several goroutines.
type groupReader struct {
	ctx   context.Context
	items []item
	files []smallFile
	next  atomic.Int64 // the next index of items to claim
	stop  atomic.Bool
	wg    sync.WaitGroup
}

// fileBufs holds read buffers for small files, to spare the garbage
// collector one allocation per file.
var fileBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// readGroup starts reading the regular files among items; the others are
// left to the caller (their smallFile is never done). Wait for file i with
// file(i); close when done, even on an error.
func readGroup(ctx context.Context, items []item) *groupReader {
	g := &groupReader{ctx: ctx, items: items, files: make([]smallFile, len(items))}
	for i := range g.files {
		g.files[i].done = make(chan struct{})
	}
	for range min(runtime.GOMAXPROCS(0), len(items)) {
		g.wg.Add(1)
		go g.read()
	}
	return g
}

func (g *groupReader) read() {
	defer g.wg.Done()
	for !g.stop.Load() {
		i := int(g.next.Add(1) - 1)
		if i >= len(g.items) {
			return
		}
		if it := g.items[i]; it.info.Mode().IsRegular() {
			f := &g.files[i]
			if f.err = g.ctx.Err(); f.err == nil {
				readSmall(it.full, f)
			}
			close(f.done)
		}
	}
}

// file waits for the regular file items[i] to be read.
func (g *groupReader) file(i int) *smallFile {
	f := &g.files[i]
	<-f.done
	return f
}

// close stops the readers, waits for them and gives back the buffers of
// the files read.
func (g *groupReader) close() {
	g.stop.Store(true)
	g.wg.Wait()
	for i := range g.files {
		if f := &g.files[i]; f.buf != nil {
			fileBufs.Put(f.buf)
			f.buf, f.data = nil, nil
		}
	}
}

// readSmall reads the regular file at full whole into f, as addFile would
// stream it.
func readSmall(full string, f *smallFile) {
	file, st, skip, err := openFile(full)
	if skip != "" || err != nil {
		f.skip, f.err = skip, err
		return
	}
	defer file.Close()
	f.st = st
	size := st.Size()
	f.buf = fileBufs.Get().(*[]byte)
	if int64(cap(*f.buf)) < size+1 {
		*f.buf = make([]byte, 0, size+1)
	}
	buf := (*f.buf)[:size+1]
	// One read of one byte more than the size: a regular file that returns
	// less is at its end, and one that fills it has grown.
	n, err := file.Read(buf)
	if err != nil && err != io.EOF {
		f.err = fmt.Errorf("archive %s: %w", full, err)
		return
	}
	if int64(n) > size {
		n, f.grew = int(size), true
	}
	f.data = buf[:n]
	h := sha256.New()
	h.Write(f.data)
	if missing := size - int64(n); missing > 0 {
		h.Write(make([]byte, missing))
	} else if !f.grew {
		if st2, err := file.Stat(); err == nil && !st2.ModTime().Equal(st.ModTime()) {
			f.changed = true
		}
	}
	h.Sum(f.sum[:0])
}
