package fsutil

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

func TestWritebackWriterWritesEverythingAndHandsItOver(t *testing.T) {
	name := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWritebackWriter(f)
	rng := rand.New(rand.NewSource(1))
	want := make([]byte, 3*WritebackEvery+12345)
	rng.Read(want)
	for rest := want; len(rest) > 0; {
		n := min(len(rest), 1+rng.Intn(3<<20))
		if got, err := w.Write(rest[:n]); err != nil || got != n {
			t.Fatalf("write %d: %d, %v", n, got, err)
		}
		rest = rest[n:]
		// Writeback is started in whole steps, never ahead of the data.
		if w.flushed > w.off || w.off-w.flushed >= WritebackEvery {
			t.Fatalf("after %d bytes, writeback started up to %d", w.off, w.flushed)
		}
	}
	if w.flushed <= w.off-WritebackEvery {
		t.Fatalf("writeback started for %d of %d bytes", w.flushed, w.off)
	}
	w.StartRest()
	if w.flushed != int64(len(want)) {
		t.Fatalf("StartRest: writeback started up to %d of %d", w.flushed, len(want))
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("file content differs from what was written")
	}
}

func TestWritebackWriterReportsWriteErrors(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := NewWritebackWriter(f).Write([]byte("x")); err == nil {
		t.Fatal("a write to a closed file succeeded")
	}
}
