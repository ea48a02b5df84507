package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// lstatItems describes the given files of dir as the walk would.
func lstatItems(t *testing.T, dir string, names ...string) []item {
	t.Helper()
	var items []item
	for _, n := range names {
		full := filepath.Join(dir, n)
		info, err := os.Lstat(full)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, item{full: full, name: "storage/" + n, info: info})
	}
	return items
}

// Small files are opened by the group's readers after the walk saw them: one
// replaced by a symlink in between is not followed, one that vanished is
// skipped, and the others are read whole with their sums.
func TestGroupReaderDoesNotFollowASymlink(t *testing.T) {
	dir := t.TempDir()
	want := map[string][]byte{}
	for i, n := range []string{"a.log", "b.log", "c.log", "d.log"} {
		want[n] = bytes.Repeat([]byte{byte('a' + i)}, 100*(i+1))
		if err := os.WriteFile(filepath.Join(dir, n), want[n], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-secret")
	os.WriteFile(secret, []byte("not for the backup"), 0o600)
	items := lstatItems(t, dir, "a.log", "b.log", "c.log", "d.log")
	os.Remove(filepath.Join(dir, "b.log"))
	if err := os.Symlink(secret, filepath.Join(dir, "b.log")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "c.log"))

	g := readGroup(context.Background(), items)
	defer g.close()
	for i, it := range items {
		f := g.file(i)
		n := filepath.Base(it.full)
		switch {
		case f.err != nil:
			t.Errorf("%s: %v", n, f.err)
		case n == "b.log":
			if !strings.Contains(f.skip, "replaced by a symlink") || f.data != nil {
				t.Errorf("b.log: skip %q, %d bytes read; want it skipped as replaced by a symlink", f.skip, len(f.data))
			}
		case n == "c.log":
			if !strings.Contains(f.skip, "vanished") {
				t.Errorf("c.log: skip %q, want it skipped as vanished", f.skip)
			}
		default:
			if f.skip != "" || !bytes.Equal(f.data, want[n]) || f.sum != sha256.Sum256(want[n]) || f.grew || f.changed {
				t.Errorf("%s: skip %q, read %q, grew %v, changed %v; want its bytes and their sum", n, f.skip, f.data, f.grew, f.changed)
			}
		}
	}
}

// A file that returns fewer bytes than its size is read as far as it goes
// and summed with the missing bytes as zeros; one that returns more is read
// to its size and said to have grown. Kernel files stand in for files that
// change while they are read: /sys reports a page for a few bytes, /proc
// reports nothing for a page.
func TestGroupReaderShortAndLongFiles(t *testing.T) {
	const short, long = "/sys/kernel/mm/transparent_hugepage/enabled", "/proc/self/stat"
	items := make([]item, 2)
	for i, p := range []string{short, long} {
		info, err := os.Lstat(p)
		if err != nil || !info.Mode().IsRegular() {
			t.Skipf("%s is not a regular file here (%v): no file to read short or long", p, err)
		}
		items[i] = item{full: p, name: p[1:], info: info}
	}
	g := readGroup(context.Background(), items)
	defer g.close()
	sh := g.file(0)
	if sh.err != nil || sh.skip != "" || sh.grew || int64(len(sh.data)) >= sh.st.Size() || len(sh.data) == 0 {
		t.Fatalf("%s: err %v, skip %q, grew %v, %d of %d bytes read; want fewer than its size", short, sh.err, sh.skip, sh.grew, len(sh.data), sh.st.Size())
	}
	padded := append(bytes.Clone(sh.data), make([]byte, sh.st.Size()-int64(len(sh.data)))...)
	if sh.sum != sha256.Sum256(padded) {
		t.Errorf("%s: the sum is not that of its bytes zero-filled to its size", short)
	}
	lg := g.file(1)
	if lg.err != nil || lg.skip != "" || !lg.grew || len(lg.data) != 0 || lg.sum != sha256.Sum256(nil) {
		t.Errorf("%s: err %v, skip %q, grew %v, %d bytes read; want it grown, none of its bytes stored", long, lg.err, lg.skip, lg.grew, len(lg.data))
	}
}

// liveHeap is the bytes the heap holds after a collection, with the pools'
// victim caches emptied by a second one.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc) // #nosec G115 -- a heap is far below 2^63 bytes
}

// A group of many tiny files holds about the bytes it read, not a read
// buffer per file: the group's limit is in bytes, and a thousand files of a
// few dozen bytes each fit in it.
func TestGroupOfTinyFilesHoldsAboutItsBytes(t *testing.T) {
	dir := t.TempDir()
	var names []string
	var data int64
	for i := range 1500 {
		n := fmt.Sprintf("v-%05d.json", i)
		body := fmt.Sprintf(`{"part": "p-%d", "ok": true}`+"\n", i)
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
		data += int64(len(body))
	}
	items := lstatItems(t, dir, names...)
	before := liveHeap()
	g := readGroup(context.Background(), items)
	defer g.close()
	for i := range items {
		if f := g.file(i); f.err != nil || f.skip != "" || len(f.data) == 0 {
			t.Fatalf("%s: err %v, skip %q, %d bytes", names[i], f.err, f.skip, len(f.data))
		}
	}
	held := liveHeap() - before
	// The files' bytes, their descriptions (a FileInfo each), and a little
	// slack per reader.
	if limit := 4*data + int64(len(items))*512 + 4<<20; held > limit {
		t.Fatalf("a group of %d files of %d bytes in all holds %d bytes while it is read, more than %d", len(items), data, held, limit)
	}
	runtime.KeepAlive(g)
}

// A file the walk saw small but that has become large by the time a reader
// opens it (a log that grew, another file renamed over it) is not read
// whole into memory: it is left open, to be streamed as a large file is.
func TestGroupReaderDoesNotReadAFileThatBecameLarge(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.log"), []byte("small\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.log"), []byte("small too\n"), 0o644)
	items := lstatItems(t, dir, "a.log", "b.log")
	// Sparse: 256 MiB of zeros, none of them on the disk.
	if err := os.Truncate(filepath.Join(dir, "b.log"), 256<<20); err != nil {
		t.Fatal(err)
	}
	before := liveHeap()
	g := readGroup(context.Background(), items)
	defer g.close()
	a, b := g.file(0), g.file(1)
	if a.err != nil || string(a.data) != "small\n" {
		t.Errorf("a.log: err %v, data %q", a.err, a.data)
	}
	if b.err != nil || b.skip != "" || b.st == nil || b.st.Size() != 256<<20 {
		t.Fatalf("b.log: err %v, skip %q, st %v; want it described at its new size", b.err, b.skip, b.st)
	}
	if held := liveHeap() - before; held > 16<<20 {
		t.Fatalf("reading a group with a file grown to 256 MiB holds %d bytes", held)
	}
	runtime.KeepAlive(g)
}

// Such a file is streamed into the group's member at its size when it was
// opened, and the archive reads back against its manifest.
func TestFileThatBecameLargeIsStreamed(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "storage")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "a.log"), []byte("small\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.log"), []byte("small too\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "c.log"), []byte("small as well\n"), 0o644)
	grown := bytes.Repeat([]byte("grew past the size of a small file\n"), 100_000)
	groupReadHook = func([]item) {
		if err := os.WriteFile(filepath.Join(dir, "b.log"), grown, 0o644); err != nil {
			t.Error(err)
		}
	}
	defer func() { groupReadHook = nil }()
	var buf bytes.Buffer
	res, err := Create(context.Background(), &buf, CreateOptions{Root: root, Paths: []string{"storage"}})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(grown)
	var found bool
	for _, e := range res.Entries {
		if e.Path == "storage/b.log" {
			found = true
			if e.Size != int64(len(grown)) || e.SHA256 != fmt.Sprintf("%x", sum) {
				t.Errorf("b.log archived as %d bytes, sha256 %s; want %d bytes, %x", e.Size, e.SHA256, len(grown), sum)
			}
		}
	}
	if !found {
		t.Fatalf("b.log not archived: %+v", res.Entries)
	}
	m := &manifest.Manifest{FormatVersion: manifest.FormatVersion, ID: "20250101_010101", Kind: manifest.KindManual, Paths: []string{"storage"},
		Archive: manifest.FileRef{File: manifest.ArchiveName("20250101_010101"), SHA256: res.SHA256, Size: res.Size},
		Files:   res.Entries, TotalBytes: res.TotalBytes, Members: res.Members}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(context.Background(), bytes.NewReader(buf.Bytes()), m, nil); err != nil {
		t.Fatal(err)
	}
}
