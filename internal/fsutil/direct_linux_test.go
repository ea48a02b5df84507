package fsutil

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentPages counts the pages of name that are in the page cache.
func residentPages(t *testing.T, name string) (resident, total int) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(data)
	page := os.Getpagesize()
	vec := make([]byte, (len(data)+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			resident++
		}
	}
	return resident, len(vec)
}

// What a DirectWriter writes takes no page of the cache (but the last part
// shorter than a block); what a WritebackWriter writes stays cached. The
// second half shows the count can tell the difference.
func TestDirectWriterLeavesThePageCacheAlone(t *testing.T) {
	if _, ok := directModes(t)["direct"]; !ok {
		t.Skip("the test directory's file system refuses O_DIRECT")
	}
	data := randomBytes(2*DirectChunk+100, 5)
	direct := filepath.Join(t.TempDir(), "direct")
	w, err := CreateDirect(direct, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if res, total := residentPages(t, direct); res > 1 {
		t.Fatalf("%d of %d pages of the directly written file are cached", res, total)
	}

	buffered := filepath.Join(t.TempDir(), "buffered")
	if err := os.WriteFile(buffered, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if res, total := residentPages(t, buffered); res < total/2 {
		t.Fatalf("only %d of %d pages of a file written through the cache are cached: the count is wrong", res, total)
	}
}

// A DirectReader reads from the device: reading a file that is not cached
// leaves it uncached.
func TestDirectReaderLeavesThePageCacheAlone(t *testing.T) {
	if _, ok := directModes(t)["direct"]; !ok {
		t.Skip("the test directory's file system refuses O_DIRECT")
	}
	name := filepath.Join(t.TempDir(), "in")
	w, err := CreateDirect(name, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(randomBytes(DirectChunk, 6))
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r, err := OpenDirect(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := AlignedBuffer(1 << 20)
	for {
		if _, err := r.Read(buf); err != nil {
			break
		}
	}
	if !r.Direct() {
		t.Fatal("the reader left direct I/O on an aligned file")
	}
	if res, total := residentPages(t, name); res > 0 {
		t.Fatalf("%d of %d pages are cached after a direct read", res, total)
	}
}
