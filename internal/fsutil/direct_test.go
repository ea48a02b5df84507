package fsutil

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// directModes are the ways a DirectWriter or DirectReader can run: around
// the page cache, and through it (where the file system refuses O_DIRECT).
func directModes(t *testing.T) map[string]int {
	t.Helper()
	modes := map[string]int{"buffered": 0}
	if oDirect == 0 {
		return modes
	}
	probe := filepath.Join(t.TempDir(), "probe")
	f, err := os.OpenFile(probe, os.O_WRONLY|os.O_CREATE|oDirect, 0o600)
	if err != nil {
		t.Logf("the test directory's file system refuses O_DIRECT (%v): only the buffered mode is tested", err)
		return modes
	}
	f.Close()
	modes["direct"] = oDirect
	return modes
}

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func TestAlignedBuffer(t *testing.T) {
	for _, n := range []int{DirectAlign, 1 << 20, DirectChunk} {
		b := AlignedBuffer(n)
		if len(b) != n || cap(b) != n || uintptr(unsafe.Pointer(&b[0]))%DirectAlign != 0 || !aligned(b) {
			t.Fatalf("AlignedBuffer(%d): len %d cap %d address %p", n, len(b), cap(b), &b[0])
		}
	}
	if b := AlignedBuffer(2 * DirectAlign); aligned(b[1:]) || aligned(b[:DirectAlign+1]) {
		t.Fatal("an unaligned slice was taken for aligned")
	}
}

func TestDirectWriterWritesEverything(t *testing.T) {
	want := randomBytes(5*DirectChunk+12345, 1)
	for mode, flag := range directModes(t) {
		t.Run(mode, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "out")
			w, err := createDirect(name, 0o600, flag)
			if err != nil {
				t.Fatal(err)
			}
			if w.Direct() != (flag != 0) {
				t.Fatalf("Direct() = %v in mode %s", w.Direct(), mode)
			}
			rng := rand.New(rand.NewSource(2))
			for rest := want; len(rest) > 0; {
				n := min(len(rest), 1+rng.Intn(3<<20))
				if got, err := w.Write(rest[:n]); err != nil || got != n {
					t.Fatalf("write %d: %d, %v", n, got, err)
				}
				rest = rest[n:]
			}
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("file holds %d bytes that differ from the %d written", len(got), len(want))
			}
			if st, _ := os.Stat(name); st.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v", st.Mode())
			}
		})
	}
}

// Direct writing can end in the middle of a file (a device that refuses a
// transfer, a short write); the rest goes through the page cache.
func TestDirectWriterGoesOnThroughTheCache(t *testing.T) {
	modes := directModes(t)
	if _, ok := modes["direct"]; !ok {
		t.Skip("the test directory's file system refuses O_DIRECT")
	}
	name := filepath.Join(t.TempDir(), "out")
	w, err := CreateDirect(name, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want := randomBytes(DirectChunk+3*DirectAlign+17, 3)
	if _, err := w.Write(want[:DirectChunk+5]); err != nil {
		t.Fatal(err)
	}
	if err := w.buffered(); err != nil {
		t.Fatal(err)
	}
	if w.Direct() {
		t.Fatal("still direct")
	}
	if _, err := w.Write(want[DirectChunk+5:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(name); !bytes.Equal(got, want) {
		t.Fatalf("file holds %d bytes that differ from the %d written", len(got), len(want))
	}
}

func TestDirectWriterErrors(t *testing.T) {
	for mode, flag := range directModes(t) {
		t.Run(mode, func(t *testing.T) {
			w, err := createDirect(filepath.Join(t.TempDir(), "out"), 0o600, flag)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			w.Write([]byte("x"))
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte("y")); err == nil {
				t.Fatal("a write after Sync succeeded")
			}
		})
	}
	// A full disk: the error is the file system's, and it sticks.
	w, err := CreateDirect("/dev/full", 0)
	if err != nil {
		t.Skipf("no /dev/full here: %v", err)
	}
	defer w.Close()
	_, err = w.Write(make([]byte, DirectChunk+1))
	if err == nil {
		err = w.Sync()
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing to /dev/full: %v, want ENOSPC", err)
	}
	if _, err2 := w.Write([]byte("z")); !errors.Is(err2, syscall.ENOSPC) {
		t.Fatalf("the next write: %v, want the same error", err2)
	}
	if err2 := w.Sync(); !errors.Is(err2, syscall.ENOSPC) {
		t.Fatalf("Sync after a failed write: %v, want the same error", err2)
	}
}

func TestCreateDirectReportsOpenErrors(t *testing.T) {
	if _, err := CreateDirect(filepath.Join(t.TempDir(), "missing", "out"), 0o600); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
	if _, err := OpenDirect(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
}

func TestDirectReaderReadsEverything(t *testing.T) {
	want := randomBytes(3<<20+777, 4)
	name := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(name, want, 0o600); err != nil {
		t.Fatal(err)
	}
	// Aligned buffers are read into directly, others through the reader's
	// own buffer; mixing them must not lose or repeat a byte.
	readers := map[string]func(r io.Reader) ([]byte, error){
		"aligned": func(r io.Reader) ([]byte, error) {
			var out []byte
			buf := AlignedBuffer(1 << 20)
			for {
				n, err := r.Read(buf)
				out = append(out, buf[:n]...)
				if err == io.EOF {
					return out, nil
				}
				if err != nil {
					return out, err
				}
			}
		},
		"odd sizes": func(r io.Reader) ([]byte, error) {
			return io.ReadAll(io.LimitReader(r, 1<<40))
		},
		"mixed": func(r io.Reader) ([]byte, error) {
			var out []byte
			bufs := [][]byte{AlignedBuffer(64 << 10), make([]byte, 1000), AlignedBuffer(1 << 20)[1:]}
			for i := 0; ; i++ {
				b := bufs[i%len(bufs)]
				n, err := r.Read(b)
				out = append(out, b[:n]...)
				if err == io.EOF {
					return out, nil
				}
				if err != nil {
					return out, err
				}
			}
		},
	}
	for mode, flag := range directModes(t) {
		for how, read := range readers {
			t.Run(mode+"/"+how, func(t *testing.T) {
				r, err := openDirect(name, flag)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				if r.Direct() != (flag != 0) {
					t.Fatalf("Direct() = %v in mode %s", r.Direct(), mode)
				}
				got, err := read(r)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("read %d bytes that differ from the %d in the file", len(got), len(want))
				}
			})
		}
	}
}

// ReadFrom (what io.Copy uses) and Finish (no fsync: the caller syncs the
// file system) write the same bytes as Write and Sync.
func TestDirectWriterReadFromAndFinish(t *testing.T) {
	want := randomBytes(2*DirectChunk+DirectAlign+99, 7)
	for mode, flag := range directModes(t) {
		t.Run(mode, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "out")
			f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|flag, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			w := NewDirectWriter(f, flag != 0, AlignedBuffer(DirectChunk))
			// A reader that returns odd amounts, as a tar entry does.
			src := io.MultiReader(bytes.NewReader(want[:12345]), bytes.NewReader(want[12345:]))
			n, err := io.Copy(w, src)
			if err != nil || n != int64(len(want)) {
				t.Fatalf("copied %d of %d: %v", n, len(want), err)
			}
			if err := w.Finish(); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte("x")); err == nil {
				t.Fatal("a write after Finish succeeded")
			}
			if flag == 0 && w.wb.flushed != int64(len(want)) {
				t.Fatalf("writeback started for %d of %d bytes", w.wb.flushed, len(want))
			}
			if got, _ := os.ReadFile(name); !bytes.Equal(got, want) {
				t.Fatalf("file holds %d bytes that differ from the %d written", len(got), len(want))
			}
		})
	}
}

// DirectReaderAt returns exactly the file's bytes at any offset and length:
// inside one window, across windows, larger than a window, and at or past
// the end of the file (io.EOF with what there was).
func TestDirectReaderAtReadsAnyRange(t *testing.T) {
	want := randomBytes(2*directWindow+5000, 5)
	name := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(name, want, 0o600); err != nil {
		t.Fatal(err)
	}
	size := int64(len(want))
	ranges := []struct{ off, n int64 }{
		{0, 100}, {100, 4096}, {4095, 3}, {directWindow - 10, 20}, {3, directWindow + 9000},
		{0, size}, {size - 7, 7}, {1 << 20, 1}, {size - 5, 10}, {size, 1}, {size + 4096, 10},
	}
	for mode, flag := range directModes(t) {
		t.Run(mode, func(t *testing.T) {
			r, err := openDirectAt(name, flag)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for _, rg := range ranges {
				p := make([]byte, rg.n)
				n, err := r.ReadAt(p, rg.off)
				end := min(rg.off+rg.n, size)
				wantN := max(end-rg.off, 0)
				if int64(n) != wantN {
					t.Fatalf("ReadAt(%d bytes at %d) = %d bytes, want %d (err %v)", rg.n, rg.off, n, wantN, err)
				}
				if wantN < rg.n && err != io.EOF {
					t.Fatalf("ReadAt(%d bytes at %d) past the end: err %v, want io.EOF", rg.n, rg.off, err)
				}
				if wantN == rg.n && err != nil {
					t.Fatalf("ReadAt(%d bytes at %d): %v", rg.n, rg.off, err)
				}
				if n > 0 && !bytes.Equal(p[:n], want[rg.off:rg.off+int64(n)]) {
					t.Fatalf("ReadAt(%d bytes at %d) returned bytes that differ from the file's", rg.n, rg.off)
				}
			}
			if r.Direct() != (flag != 0) {
				t.Fatalf("Direct() = %v after reading in mode %s", r.Direct(), mode)
			}
		})
	}
}

// One gathering buffer serves file after file (as an extraction passes it):
// every file holds exactly its bytes, and the buffer stays the caller's. The
// writer used to hand it to the pool of second buffers when it finished, so
// the next file's writer took it as its own second buffer too and refilled
// the chunk being written in the background: the start of large files came
// out as the bytes of a later chunk, while their hashes, taken from the
// stream, said nothing was wrong.
func TestDirectWriterSharedBufferAcrossFiles(t *testing.T) {
	for mode, flag := range directModes(t) {
		t.Run(mode, func(t *testing.T) {
			shared := AlignedBuffer(DirectChunk)
			dir := t.TempDir()
			for i := range 4 {
				want := randomBytes(3*DirectChunk+1234+i, int64(10+i))
				name := filepath.Join(dir, "out"+string(rune('a'+i)))
				f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|flag, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				w := NewDirectWriter(f, flag != 0, shared)
				for p := want; len(p) > 0; {
					k := min(len(p), 32<<10)
					if _, err := w.Write(p[:k]); err != nil {
						t.Fatal(err)
					}
					p = p[k:]
				}
				if err := w.Finish(); err != nil {
					t.Fatal(err)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				if got, _ := os.ReadFile(name); !bytes.Equal(got, want) {
					t.Fatalf("file %d holds bytes that differ from those written", i)
				}
				// Nothing the pool hands out may be the caller's buffer.
				p := chunkPool.Get().(*[]byte)
				if &(*p)[0] == &shared[0] {
					t.Fatalf("after file %d the pool holds the caller's buffer", i)
				}
				chunkPool.Put(p)
			}
		})
	}
}
