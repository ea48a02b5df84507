package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/pgzip"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// The archive's gzip stream is a series of independent gzip members, each
// holding whole tar records or a piece of a large file's (layout.go; RFC
// 1952 allows any number of members and gzip, tar -xzf and every gzip
// reader concatenate them). Each member's header carries an extra field,
// "VB", with the member's total size, so a reader can find the next member
// without inflating this one, and inflate several at once.
const (
	// memberBlock is the size a member's input buffer starts at.
	memberBlock = 1 << 20
	// memberHeaderLen is the gzip header with its 8-byte extra field.
	memberHeaderLen = 20
	// memberMaxInput and memberMaxSize bound what a reader accepts, so that a
	// hostile member cannot make it allocate without limit.
	memberMaxInput = 16 << 20
	memberMaxSize  = memberMaxInput + memberMaxInput/8 + 1<<16
)

// memberHeader is the fixed part of every member's header: magic, deflate,
// FLG.FEXTRA, no mtime, XFL 0, OS unknown, XLEN 8, subfield "VB" of 4 bytes.
var memberHeader = [16]byte{0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 8, 0, 'V', 'B', 4, 0}

// memberWriter compresses what is written to it into gzip members, on
// several goroutines, and writes them to w in order. The creator says where
// a member ends (cut) and what it holds (span); within a large file, limit
// cuts it in pieces. A member copied from an earlier archive goes through
// unchanged (submitRaw). It records every member in its table.
type memberWriter struct {
	w       io.Writer
	level   int
	block   []byte
	limit   int                  // a member is cut when its block reaches this size
	span    span                 // what the current block holds, for the table
	free    chan []byte          // input blocks to fill
	queue   chan chan memberDone // compressed members, in order
	jobs    chan memberJob       // blocks to compress
	written chan error           // the emitter's result, once queue is closed
	out     sync.Pool            // *bytes.Buffer for compressed members
	wg      sync.WaitGroup
	members int
	closed  bool
	err     error
	failed  atomic.Pointer[error] // the emitter's first error, as soon as it happens
	aborted atomic.Bool           // Abort: write nothing more
	table   []manifest.Member     // written by the emitter; read after stop
}

// span is what a member holds: the tar records of entries first to
// first+count, or piece (from 1) of entry first.
type span struct{ first, count, piece int }

type memberJob struct {
	data []byte
	raw  *memberSums // the sums of data, if data is a member already
	span span
	done chan memberDone
}

// memberSums are a member's SHA-256 and, for a member copied from an
// earlier archive, its CRC-32C, in hex.
type memberSums struct{ sha256, crc32c string }

// hashMember returns the sums of a member compressed afresh: its SHA-256
// only, as its read-back inflates it.
func hashMember(b []byte) memberSums {
	sum := sha256.Sum256(b)
	return memberSums{sha256: hex.EncodeToString(sum[:])}
}

// sumMember returns the sums of a member copied from an earlier archive:
// the read-back compares the copy on the disk with its CRC-32C.
func sumMember(b []byte) memberSums {
	sums := hashMember(b)
	sums.crc32c = fmt.Sprintf("%08x", crc32.Checksum(b, castagnoli))
	return sums
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type memberDone struct {
	data   []byte        // the input block, to reuse
	member *bytes.Buffer // the complete member; nil if data is one
	sums   memberSums
	span   span
	err    error
}

// newMemberWriter starts workers compressing goroutines at the given flate
// level; Close flushes and stops them.
func newMemberWriter(w io.Writer, level, workers int) (*memberWriter, error) {
	if _, err := flate.NewWriter(io.Discard, level); err != nil {
		return nil, fmt.Errorf("gzip level %d: %w", level, err)
	}
	workers = max(workers, 1)
	mw := &memberWriter{
		w:       w,
		level:   level,
		limit:   memberMaxInput,
		free:    make(chan []byte, 2*workers+1),
		queue:   make(chan chan memberDone, 2*workers),
		jobs:    make(chan memberJob),
		written: make(chan error, 1),
	}
	mw.out.New = func() any { return new(bytes.Buffer) }
	for range 2*workers + 1 {
		mw.free <- make([]byte, 0, memberBlock)
	}
	mw.block = <-mw.free
	for range workers {
		mw.wg.Add(1)
		go mw.compress()
	}
	go mw.emit()
	return mw, nil
}

func (mw *memberWriter) compress() {
	defer mw.wg.Done()
	fw, _ := flate.NewWriter(io.Discard, mw.level)
	var store *flate.Writer
	var probe *prober
	if mw.level != flate.NoCompression {
		store, _ = flate.NewWriter(io.Discard, flate.NoCompression)
		probe = newProber()
	}
	for j := range mw.jobs {
		if j.raw != nil {
			j.done <- memberDone{data: j.data, sums: *j.raw, span: j.span}
			continue
		}
		buf := mw.out.Get().(*bytes.Buffer)
		w := fw
		if probe != nil && probe.incompressible(j.data) {
			w = store
		}
		err := writeMember(buf, w, j.data)
		j.done <- memberDone{data: j.data, member: buf, sums: hashMember(buf.Bytes()), span: j.span, err: err}
	}
}

// A block of the tar stream that deflate cannot shrink (recordings and
// images, already compressed; encrypted or random bytes) is stored, not
// compressed: at level 4 the compressor spends as long on such a block as on
// text (257 MB/s on the reference data's recordings, 148 MB/s on its logs)
// and then stores it anyway. Probing a few samples at the fastest level
// decides it for a few microseconds.
const (
	// probeLen is the size of one sample.
	probeLen = 4 << 10
	// probeCount is how many samples, each in the middle of an equal part
	// of the block, must all fail to compress for the block to be stored.
	// None touches the block's ends: a member starts at a file's tar header
	// and often ends in the zeros that pad its last record, which would
	// make a sample there compress and a recording's every first and last
	// piece go through the compressor.
	probeCount = 4
	// probeMinBlock is the smallest block probed: a shorter one (the last
	// of a stream) is compressed without asking.
	probeMinBlock = probeLen * probeCount * 4
)

// prober tells incompressible blocks from the rest.
type prober struct {
	fw *flate.Writer
	n  countingWriter
}

func newProber() *prober {
	p := &prober{}
	p.fw, _ = flate.NewWriter(&p.n, flate.BestSpeed)
	return p
}

// incompressible reports whether every sample of block deflates, at the
// fastest level, to more than 97 % of its size. One sample that compresses
// is enough to compress the whole block, so text that shares a block with
// the end of a recording is still compressed.
func (p *prober) incompressible(block []byte) bool {
	if len(block) < probeMinBlock {
		return false
	}
	for i := range probeCount {
		at := (2*i+1)*len(block)/(2*probeCount) - probeLen/2
		sample := block[at : at+probeLen]
		p.n = 0
		p.fw.Reset(&p.n)
		p.fw.Write(sample) // #nosec G104 -- compresses into a counting sink, which cannot fail
		p.fw.Close()       // #nosec G104 -- compresses into a counting sink, which cannot fail
		if int(p.n) < len(sample)*97/100 {
			return false
		}
	}
	return true
}

// countingWriter counts what is written to it and keeps nothing.
type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// writeMember writes data as one complete gzip member to buf.
func writeMember(buf *bytes.Buffer, fw *flate.Writer, data []byte) error {
	buf.Reset()
	buf.Write(memberHeader[:])
	buf.Write([]byte{0, 0, 0, 0}) // the member's size, set below
	fw.Reset(buf)
	if _, err := fw.Write(data); err != nil {
		return err
	}
	if err := fw.Close(); err != nil {
		return err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], crc32.ChecksumIEEE(data))
	binary.LittleEndian.PutUint32(trailer[4:], uint32(len(data))) // #nosec G115 -- gzip ISIZE is the length modulo 2^32 by RFC 1952, and a member is at most a few MiB
	buf.Write(trailer[:])
	binary.LittleEndian.PutUint32(buf.Bytes()[16:20], uint32(buf.Len())) // #nosec G115 -- a member is at most a few MiB
	return nil
}

// emit writes the members in order and records each in the table. After
// the first error, or once aborted, it only drains.
func (mw *memberWriter) emit() {
	var err error
	var offset int64
	for done := range mw.queue {
		d := <-done
		if err == nil {
			err = d.err
		}
		member := d.data
		if d.member != nil {
			member = d.member.Bytes()
		}
		if err == nil && !mw.aborted.Load() {
			_, err = mw.w.Write(member)
			if err != nil {
				mw.failed.Store(&err)
			}
			mw.table = append(mw.table, manifest.Member{
				Offset: offset, Length: int64(len(member)), SHA256: d.sums.sha256, CRC32C: d.sums.crc32c,
				First: d.span.first, Count: d.span.count, Piece: d.span.piece, Copied: d.member == nil,
			})
			offset += int64(len(member))
		}
		if d.member != nil {
			mw.out.Put(d.member)
		}
		mw.free <- d.data[:0]
	}
	mw.written <- err
}

// Write buffers p and hands the block to the compressors whenever it
// reaches the limit (the pieces of a large file).
func (mw *memberWriter) Write(p []byte) (int, error) {
	if mw.closed {
		return 0, errors.New("gzip writer: write after close")
	}
	if err := mw.failed.Load(); err != nil {
		return 0, fmt.Errorf("write gzip member: %w", *err)
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), mw.limit-len(mw.block))
		mw.block = append(mw.block, p[:k]...)
		p, n = p[k:], n+k
		if len(mw.block) == mw.limit {
			mw.flush()
			if mw.span.piece > 0 {
				mw.span.piece++
			}
		}
	}
	return n, nil
}

// pieces makes what follows the pieces of entry, cut every pieceBlock
// bytes, until the next cut.
func (mw *memberWriter) pieces(entry int) {
	mw.span = span{first: entry, count: 1, piece: 1}
	mw.limit = pieceBlock
}

// cut ends the current member, if it holds anything; s says what it holds,
// unless it is a piece. What follows is in a new member, of whole records.
func (mw *memberWriter) cut(s span) {
	if mw.span.piece == 0 {
		mw.span = s
	}
	if len(mw.block) > 0 {
		mw.flush()
	}
	mw.span, mw.limit = span{}, memberMaxInput
}

// rawBuffer returns a buffer of n bytes for a member copied from an earlier
// archive; submitRaw hands it on as it is. Between two members only: the
// current block stays empty until submitRaw, so if the copy is given up
// what is written next starts the member.
func (mw *memberWriter) rawBuffer(n int) []byte {
	if cap(mw.block) < n {
		mw.block = make([]byte, 0, n)
	}
	return mw.block[:n]
}

// submitRaw writes the member in rawBuffer's buffer, whose sums are given.
func (mw *memberWriter) submitRaw(n int, sums memberSums, s span) {
	done := make(chan memberDone, 1)
	mw.queue <- done
	mw.jobs <- memberJob{data: mw.block[:n], raw: &sums, span: s, done: done}
	mw.members++
	mw.block = <-mw.free
}

// submit hands the current block to the compressors, in order.
func (mw *memberWriter) submit() {
	done := make(chan memberDone, 1)
	mw.queue <- done
	mw.jobs <- memberJob{data: mw.block, span: mw.span, done: done}
	mw.block = nil
	mw.members++
}

// flush submits the current block and takes a free one, which only comes
// back once its member has been written: this is what bounds the memory.
func (mw *memberWriter) flush() {
	mw.submit()
	mw.block = <-mw.free
}

// Close compresses what is buffered (labelled s), waits until every member
// is written and returns the first error. A stream always has at least one
// member.
func (mw *memberWriter) Close(s span) error {
	if mw.closed {
		return mw.err
	}
	if len(mw.block) > 0 || mw.members == 0 {
		mw.span = s
		mw.submit()
	}
	return mw.stop()
}

// Abort stops the goroutines and writes nothing more; for a failed archive.
func (mw *memberWriter) Abort() {
	if !mw.closed {
		mw.aborted.Store(true)
		_ = mw.stop()
	}
}

func (mw *memberWriter) stop() error {
	mw.closed = true
	close(mw.jobs)
	close(mw.queue)
	mw.wg.Wait()
	mw.err = <-mw.written
	if mw.err != nil {
		mw.err = fmt.Errorf("write gzip member: %w", mw.err)
	}
	return mw.err
}

// newGzipReader returns a reader of an archive's gzip stream. Members written
// by memberWriter are inflated on workers goroutines at once; any other gzip
// stream (archives of earlier releases, or of another tool) is read as one
// member by pgzip, as before.
func newGzipReader(r io.Reader, workers int) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	if head, err := br.Peek(memberHeaderLen); err == nil && bytes.Equal(head[:16], memberHeader[:]) {
		return newMemberReader(br, workers), nil
	}
	gz, err := pgzip.NewReader(br)
	if err != nil {
		return nil, err
	}
	gz.Multistream(false)
	return gz, nil
}

// memberReader reads a stream of memberWriter's members: one goroutine
// splits the stream by the sizes in the headers, workers inflate and check
// each member (CRC-32 and size), and Read returns the blocks in order.
type memberReader struct {
	r     *bufio.Reader
	queue chan chan inflated // one per member, in order
	jobs  chan inflateJob
	stop  chan struct{}
	wg    sync.WaitGroup
	bufs  sync.Pool // *[]byte
	cur   []byte    // the unread part of the current block
	block *[]byte   // the current block, to give back
	err   error
}

type inflateJob struct {
	index  int
	member *[]byte
	done   chan inflated
}

type inflated struct {
	data *[]byte
	err  error
}

func newMemberReader(r *bufio.Reader, workers int) *memberReader {
	workers = max(workers, 1)
	m := &memberReader{
		r:     r,
		queue: make(chan chan inflated, 2*workers),
		jobs:  make(chan inflateJob),
		stop:  make(chan struct{}),
	}
	m.bufs.New = func() any { b := make([]byte, 0, memberBlock); return &b }
	for range workers {
		m.wg.Add(1)
		go m.inflate()
	}
	m.wg.Add(1)
	go m.split()
	return m
}

// split reads the stream member by member and hands each to the workers.
func (m *memberReader) split() {
	defer m.wg.Done()
	defer close(m.jobs)
	defer close(m.queue)
	for i := 0; ; i++ {
		member, err := m.next(i)
		if err == io.EOF {
			return
		}
		done := make(chan inflated, 1)
		if err != nil {
			done <- inflated{err: err}
		}
		select {
		case m.queue <- done:
		case <-m.stop:
			return
		}
		if err != nil {
			return
		}
		select {
		case m.jobs <- inflateJob{index: i, member: member, done: done}:
		case <-m.stop:
			return
		}
	}
}

// next reads member i whole; io.EOF means the stream ended cleanly before it.
func (m *memberReader) next(i int) (*[]byte, error) {
	head, err := m.r.Peek(memberHeaderLen)
	if len(head) == 0 && err == io.EOF {
		if i == 0 {
			return nil, fmt.Errorf("gzip stream: %w", io.ErrUnexpectedEOF)
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("gzip member %d: header: %w", i, unexpectedEOF(err))
	}
	if !bytes.Equal(head[:16], memberHeader[:]) {
		return nil, fmt.Errorf("gzip member %d: not a member header (% x)", i, head[:16])
	}
	size := int(binary.LittleEndian.Uint32(head[16:]))
	if size < memberHeaderLen+2+8 || size > memberMaxSize {
		return nil, fmt.Errorf("gzip member %d: size %d out of range", i, size)
	}
	b := m.bufs.Get().(*[]byte)
	if cap(*b) < size {
		*b = make([]byte, size)
	}
	*b = (*b)[:size]
	if _, err := io.ReadFull(m.r, *b); err != nil {
		m.bufs.Put(b)
		return nil, fmt.Errorf("gzip member %d: %w", i, unexpectedEOF(err))
	}
	return b, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (m *memberReader) inflate() {
	defer m.wg.Done()
	fr := flate.NewReader(nil)
	for j := range m.jobs {
		out := m.bufs.Get().(*[]byte)
		err := inflateMember(fr, *j.member, out)
		m.bufs.Put(j.member)
		if err != nil {
			m.bufs.Put(out)
			j.done <- inflated{err: fmt.Errorf("gzip member %d: %w", j.index, err)}
			continue
		}
		j.done <- inflated{data: out}
	}
}

// inflateMember inflates one whole member into out and checks that the
// deflate data ends exactly where the member does, and its CRC-32 and size.
func inflateMember(fr io.ReadCloser, member []byte, out *[]byte) error {
	body, trailer := member[memberHeaderLen:len(member)-8], member[len(member)-8:]
	size := int(binary.LittleEndian.Uint32(trailer[4:]))
	if size > memberMaxInput {
		return fmt.Errorf("holds %d bytes, more than a member may", size)
	}
	br := bytes.NewReader(body)
	if err := fr.(flate.Resetter).Reset(br, nil); err != nil {
		return err
	}
	if cap(*out) < size {
		*out = make([]byte, size)
	}
	*out = (*out)[:size]
	if _, err := io.ReadFull(fr, *out); err != nil {
		return fmt.Errorf("inflate: %w", unexpectedEOF(err))
	}
	var one [1]byte
	if n, err := fr.Read(one[:]); n != 0 || err != io.EOF {
		return errors.New("inflates to more than its trailer says")
	}
	if br.Len() != 0 {
		return errors.New("bytes between the deflate data and the trailer")
	}
	if crc32.ChecksumIEEE(*out) != binary.LittleEndian.Uint32(trailer[:4]) {
		return errors.New("CRC-32 mismatch")
	}
	return nil
}

// Read returns the inflated stream, in order.
func (m *memberReader) Read(p []byte) (int, error) {
	for len(m.cur) == 0 {
		if m.block != nil {
			m.bufs.Put(m.block)
			m.block = nil
		}
		if m.err != nil {
			return 0, m.err
		}
		done, ok := <-m.queue
		if !ok {
			m.err = io.EOF
			continue
		}
		d := <-done
		if d.err != nil {
			m.err = d.err
			continue
		}
		m.block, m.cur = d.data, *d.data
	}
	n := copy(p, m.cur)
	m.cur = m.cur[n:]
	return n, nil
}

// Close stops the goroutines and returns once none reads the stream any more.
func (m *memberReader) Close() error {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	// Workers never block (each done channel holds its one result); split
	// may, and it watches stop.
	m.wg.Wait()
	return nil
}
