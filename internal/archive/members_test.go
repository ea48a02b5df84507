package archive

import (
	"archive/tar"
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// mixed is n bytes, half text that compresses and half random bytes that do not.
func mixed(n int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	b := make([]byte, n)
	line := []byte("2025-12-01T10:00:00Z info trade filled symbol AAPL qty 100\n")
	for i := 0; i < n; {
		if rng.Intn(2) == 0 {
			i += copy(b[i:], line)
		} else {
			k := min(n-i, 4096)
			rng.Read(b[i : i+k])
			i += k
		}
	}
	return b
}

func writeMembers(t testing.TB, data []byte, workers int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := newMemberWriter(&out, 5, workers)
	if err != nil {
		t.Fatal(err)
	}
	w.pieces(0) // members of pieceBlock bytes
	// Uneven writes, as the tar writer makes them.
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 1+len(rest)%70001)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Close(span{}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func readMembers(stream []byte, workers int) ([]byte, error) {
	r, err := newGzipReader(bytes.NewReader(stream), workers)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// members splits a stream at the sizes its headers give.
func members(t *testing.T, stream []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(stream) > 0 {
		if len(stream) < memberHeaderLen || !bytes.Equal(stream[:16], memberHeader[:]) {
			t.Fatalf("member %d: no member header", len(out))
		}
		n := int(binary.LittleEndian.Uint32(stream[16:20]))
		out = append(out, stream[:n])
		stream = stream[n:]
	}
	return out
}

func TestMembersRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, memberBlock - 1, memberBlock, memberBlock + 1, 3*memberBlock + 12345} {
		for _, workers := range []int{1, 3} {
			data := mixed(n, int64(n))
			stream := writeMembers(t, data, workers)
			if want, got := max(1, (n+memberBlock-1)/memberBlock), len(members(t, stream)); got != want {
				t.Errorf("%d bytes: %d members, want %d", n, got, want)
			}
			got, err := readMembers(stream, workers)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes, %d workers: read back %d bytes, %v", n, workers, len(got), err)
			}
			// Any gzip reader reads the members as one stream.
			zr, err := stdgzip.NewReader(bytes.NewReader(stream))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes: compress/gzip read back %d bytes, %v", n, len(got), err)
			}
		}
	}
}

func TestGzipToolReadsMembers(t *testing.T) {
	gz, err := exec.LookPath("gzip")
	if err != nil {
		t.Skip("gzip is not installed; TestRoundTripByteForByte still runs tar -xzf")
	}
	data := mixed(3*memberBlock+5, 1)
	cmd := exec.Command(gz, "-dc")
	cmd.Stdin = bytes.NewReader(writeMembers(t, data, 2))
	got, err := cmd.Output()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("gzip -dc: %d bytes, %v", len(got), err)
	}
	cmd = exec.Command(gz, "-t")
	cmd.Stdin = bytes.NewReader(writeMembers(t, data, 2))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gzip -t: %v %s", err, out)
	}
}

// A gzip stream in one member, as earlier releases (pgzip) and other tools
// write, is still read.
func TestGzipReaderReadsOtherStreams(t *testing.T) {
	data := mixed(2*memberBlock+7, 2)
	var buf bytes.Buffer
	zw := stdgzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	got, err := readMembers(buf.Bytes(), 2)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("one-member stream: %d bytes, %v", len(got), err)
	}
}

func TestMemberReaderRefusesDamage(t *testing.T) {
	data := mixed(3*memberBlock, 3)
	stream := writeMembers(t, data, 2)
	ms := members(t, stream)
	second := len(ms[0]) // offset of the second member
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(stream)) }
	for _, tc := range []struct {
		name   string
		stream []byte
		want   string
	}{
		{"truncated in a header", stream[:second+10], "gzip member 1: header: unexpected EOF"},
		{"truncated in a body", stream[:second+1000], "gzip member 1: unexpected EOF"},
		{"flipped deflate byte", edit(func(b []byte) []byte { b[second+5000] ^= 0x40; return b }), "gzip member 1"},
		{"flipped CRC", edit(func(b []byte) []byte { b[second+len(ms[1])-6] ^= 1; return b }), "gzip member 1: CRC-32 mismatch"},
		{"size says less", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[second+len(ms[1])-4:], memberBlock-1)
			return b
		}), "gzip member 1: inflates to more than its trailer says"},
		{"size too large", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[second+len(ms[1])-4:], memberMaxInput+1)
			return b
		}), "more than a member may"},
		{"member length out of range", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[second+16:], 1<<31)
			return b
		}), "gzip member 1: size 2147483648 out of range"},
		{"trailing garbage", append(bytes.Clone(stream), "garbage that is not a member"...), "gzip member 3: not a member header"},
		{"empty", nil, "EOF"},
	} {
		got, err := readMembers(tc.stream, 2)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: read %d bytes, error %v, want %q", tc.name, len(got), err, tc.want)
		}
	}
}

type failingWriter struct{ left int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errors.New("no space left on device")
	}
	w.left -= len(p)
	return len(p), nil
}

// settle waits for goroutines to end and reports how many are left.
func settle(before int) int {
	for range 100 {
		if runtime.NumGoroutine() <= before {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return runtime.NumGoroutine()
}

func TestMemberWriterReportsAFailedWriteAndStops(t *testing.T) {
	before := runtime.NumGoroutine()
	w, err := newMemberWriter(&failingWriter{left: 100 << 10}, 5, 2)
	if err != nil {
		t.Fatal(err)
	}
	w.pieces(0)
	data := mixed(memberBlock, 4)
	var werr error
	for i := 0; i < 20 && werr == nil; i++ {
		_, werr = w.Write(data)
	}
	if werr == nil || !strings.Contains(werr.Error(), "no space left") {
		t.Errorf("Write after the failure: %v", werr)
	}
	if err := w.Close(span{}); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("Close: %v", err)
	}
	if n := settle(before); n > before {
		t.Errorf("%d goroutines left running, %d before", n, before)
	}
}

func TestMemberWriterAbortAndReaderCloseStopTheirGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	var out bytes.Buffer
	w, _ := newMemberWriter(&out, 5, 3)
	w.Write(mixed(2*memberBlock+3, 5))
	w.Abort()
	w.Abort()
	r, err := newGzipReader(bytes.NewReader(writeMembers(t, mixed(8*memberBlock, 6), 2)), 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, memberBlock+1)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r.Close()
	if n := settle(before); n > before {
		t.Errorf("%d goroutines left running, %d before", n, before)
	}
}

// FuzzMemberReader: any stream either reads or fails with an error; never a
// panic, and never more than the members' sizes allow.
func FuzzMemberReader(f *testing.F) {
	f.Add(writeMembers(f, mixed(memberBlock+100, 7), 2))
	f.Add(writeMembers(f, []byte("storage/a"), 1))
	f.Add(writeMembers(f, nil, 1))
	f.Fuzz(func(t *testing.T, stream []byte) {
		got, err := readMembers(stream, 2)
		if err == nil && bytes.HasPrefix(stream, memberHeader[:]) && len(got) > len(members(t, stream))*memberMaxInput {
			t.Fatalf("%d bytes from %d members", len(got), len(members(t, stream)))
		}
	})
}

// Blocks of random bytes are stored; text, and random bytes with text in
// any sampled place, are compressed; every block reads back as written.
func TestIncompressibleBlocksAreStored(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	random := make([]byte, memberBlock)
	rng.Read(random)
	text := []byte(strings.Repeat("2025-12-01T10:00:00Z info trade filled symbol AAPL qty 100\n", memberBlock/40)[:memberBlock])
	tail := append(append([]byte(nil), random[:memberBlock*3/4]...), text[:memberBlock/4]...)
	// A member of its own for a recording: its tar header first, then its
	// bytes, then the zeros that pad its last record.
	var record bytes.Buffer
	tw := tar.NewWriter(&record)
	tw.WriteHeader(&tar.Header{Name: "storage/recordings/rec-0001.webm", Mode: 0o644, Size: memberBlock - 1024 - 300, Typeflag: tar.TypeReg})
	tw.Write(random[:memberBlock-1024-300])
	tw.Flush()
	p := newProber()
	for _, c := range []struct {
		name  string
		block []byte
		want  bool
	}{
		{"random", random, true},
		{"text", text, false},
		{"random with text in its last quarter", tail, false},
		{"a recording's tar record, header and padding", record.Bytes(), true},
		{"random, shorter than a probed block", random[:probeMinBlock-1], false},
	} {
		if got := p.incompressible(c.block); got != c.want {
			t.Errorf("%s: incompressible %v, want %v", c.name, got, c.want)
		}
	}

	data := append(append(append([]byte(nil), random...), text...), tail...)
	stream := writeMembers(t, data, 2)
	ms := members(t, stream)
	if len(ms) != 3 {
		t.Fatalf("%d members, want 3", len(ms))
	}
	// A stored member is its input, the stored blocks' 5-byte headers and
	// the gzip header and trailer; the compressed ones are much smaller.
	if n := len(ms[0]); n < memberBlock || n > memberBlock+memberBlock/1000 {
		t.Errorf("random block: member of %d bytes for %d", n, memberBlock)
	}
	if n := len(ms[1]); n > memberBlock/10 {
		t.Errorf("text block: member of %d bytes for %d", n, memberBlock)
	}
	if n := len(ms[2]); n > memberBlock*3/4+memberBlock/10 {
		t.Errorf("random with text: member of %d bytes for %d, the text was not compressed", n, memberBlock)
	}
	if got, err := readMembers(stream, 2); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	zr, err := stdgzip.NewReader(bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("compress/gzip read back %d bytes, %v", len(got), err)
	}
}

// A copy given up after rawBuffer (the earlier member failed its check)
// leaves the writer as it was: what is written next is the member, whatever
// the size of the buffer the copy asked for.
func TestGivenUpCopyLeavesNothingBehind(t *testing.T) {
	for _, n := range []int{100, memberBlock + 4096} {
		var out bytes.Buffer
		mw, err := newMemberWriter(&out, 4, 2)
		if err != nil {
			t.Fatal(err)
		}
		buf := mw.rawBuffer(n)
		for i := range buf {
			buf[i] = 0xee // the damaged member's bytes, read and refused
		}
		data := mixed(3000, 7)
		mw.Write(data)
		if err := mw.Close(span{count: 1}); err != nil {
			t.Fatal(err)
		}
		got, err := readMembers(out.Bytes(), 1)
		if err != nil {
			t.Fatalf("copy of %d bytes given up: %v", n, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("copy of %d bytes given up: the stream holds %d bytes, want the %d written after it", n, len(got), len(data))
		}
	}
}
