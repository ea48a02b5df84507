package archive

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
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
// pieceFile, so reading it whole keeps the memory bounded, as long as each
// file takes about its size: a reader carves the files it reads out of
// shared slabs (carver), for a group may hold two thousand files of a few
// bytes each.

// smallFile is one file of a group as a reader found it.
type smallFile struct {
	done chan struct{} // closed once the fields below are set
	// skip, if set, is the warning to record instead of the file (it
	// vanished, or is no longer a regular file).
	skip string
	st   fs.FileInfo
	// data is what was read, at most st.Size() bytes; a file that shrank
	// is stored with the missing bytes zero-filled, and sum covers them.
	data []byte
	// open is set, and nothing read, when the file had become large by the
	// time it was opened: the creator streams it, then closes it.
	open    *os.File
	grew    bool // the file holds more than st.Size() bytes
	changed bool // its mtime moved while it was read
	sum     [sha256.Size]byte
	err     error
}

// groupReader reads the files of one group on several goroutines.
type groupReader struct {
	ctx   context.Context
	items []item
	files []smallFile
	next  atomic.Int64 // the next index of items to claim
	stop  atomic.Bool
	wg    sync.WaitGroup
	mu    sync.Mutex
	slabs []*[]byte // the readers' slabs, given back by close
}

// slabSize is the size of the slabs small files are read into; a file of
// more than slabOwn bytes gets a buffer of its own instead, so a slab wastes
// at most a quarter of itself where a file did not fit in its rest.
const (
	slabSize = 256 << 10
	slabOwn  = slabSize / 4
)

// slabs spares the garbage collector the slabs of one group after another.
var slabs = sync.Pool{New: func() any { b := make([]byte, slabSize); return &b }}

// carver hands out read buffers from slabs, one reader's at a time.
type carver struct {
	rest  []byte    // the unused end of the current slab
	slabs []*[]byte // every slab taken
}

// take returns a buffer of n bytes.
func (c *carver) take(n int) []byte {
	if n > slabOwn {
		return make([]byte, n)
	}
	if len(c.rest) < n {
		s := slabs.Get().(*[]byte)
		c.slabs = append(c.slabs, s)
		c.rest = *s
	}
	b := c.rest[:n:n]
	c.rest = c.rest[n:]
	return b
}

// groupReadHook, set by tests, is called with a group's items just before
// they are read.
var groupReadHook func([]item)

// readGroup starts reading the regular files among items; the others are
// left to the caller (their smallFile is never done). Wait for file i with
// file(i); close when done, even on an error.
func readGroup(ctx context.Context, items []item) *groupReader {
	if groupReadHook != nil {
		groupReadHook(items)
	}
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
	var c carver
	defer func() {
		g.mu.Lock()
		g.slabs = append(g.slabs, c.slabs...)
		g.mu.Unlock()
	}()
	for !g.stop.Load() {
		i := int(g.next.Add(1) - 1)
		if i >= len(g.items) {
			return
		}
		if it := g.items[i]; it.info.Mode().IsRegular() {
			f := &g.files[i]
			if f.err = g.ctx.Err(); f.err == nil {
				readSmall(it.full, f, &c)
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

// close stops the readers, waits for them and gives back the slabs the
// files were read into: no file's data may be used after it.
func (g *groupReader) close() {
	g.stop.Store(true)
	g.wg.Wait()
	for i := range g.files {
		f := &g.files[i]
		f.data = nil
		if f.open != nil {
			f.open.Close() // #nosec G104 -- read-only; left open only where the creator stopped early
			f.open = nil
		}
	}
	for _, s := range g.slabs {
		slabs.Put(s)
	}
	g.slabs = nil
}

// readSmall reads the regular file at full whole into f, in a buffer from c,
// as addFile would stream it; one that has become large since the walk saw
// it is only opened.
func readSmall(full string, f *smallFile, c *carver) {
	file, st, skip, err := openFile(full)
	if skip != "" || err != nil {
		f.skip, f.err = skip, err
		return
	}
	f.st = st
	size := st.Size()
	if size >= pieceFile {
		f.open = file
		return
	}
	defer file.Close()
	buf := c.take(int(size) + 1)
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
