package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The cache decodes a file once, hands out copies a caller may edit, reads a
// manifest written again afresh, and keeps only the most recent few.
func TestCache(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.json")
	if err := Write(p, valid()); err != nil {
		t.Fatal(err)
	}
	var c Cache
	first, err := c.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	decoded := c.entries[0].m
	first.ToolVersion = "edited by a caller"
	second, err := c.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.entries[0].m != decoded {
		t.Fatal("read a second time, the file was decoded again")
	}
	if second.ToolVersion == "edited by a caller" {
		t.Fatal("a caller's edit reached the cache")
	}

	// Written again (a new file renamed into place): the new content.
	m := valid()
	m.ToolVersion = "v2"
	if err := Write(p, m); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Read(p); err != nil || got.ToolVersion != "v2" {
		t.Fatalf("after a rewrite: %v, %v; want the new manifest", got, err)
	}

	// Put after a write serves the next read without decoding.
	m.ToolVersion = "v3"
	if err := Write(p, m); err != nil {
		t.Fatal(err)
	}
	c.Put(p, m)
	put := c.entries[0].m
	if got, err := c.Read(p); err != nil || got.ToolVersion != "v3" || c.entries[0].m != put {
		t.Fatalf("after Put: %v, %v; want v3 from the cache", got, err)
	}

	// A file that is gone is an error, not a cached answer.
	os.Remove(p)
	if _, err := c.Read(p); err == nil {
		t.Fatal("a removed manifest was still read")
	}

	for i := range cacheSize + 2 {
		q := filepath.Join(dir, fmt.Sprintf("m%d.json", i))
		// One size for all: time.Now() written with its trailing zeros
		// trimmed would make some files shorter than others.
		m := valid()
		m.CreatedAt = time.Date(2025, 12, 23, 2, 0, 0, 123456789, time.UTC)
		if err := Write(q, m); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(q); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.entries) != cacheSize || c.entries[0].path != filepath.Join(dir, fmt.Sprintf("m%d.json", cacheSize+1)) {
		t.Fatalf("%d entries, newest %s", len(c.entries), c.entries[0].path)
	}

	// Within the byte budget only: the newest that fit, and none larger.
	st, err := os.Stat(filepath.Join(dir, "m0.json"))
	if err != nil {
		t.Fatal(err)
	}
	small := Cache{maxBytes: 2*st.Size() + 1}
	for i := range 3 {
		if _, err := small.Read(filepath.Join(dir, fmt.Sprintf("m%d.json", i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(small.entries) != 2 || small.entries[0].path != filepath.Join(dir, "m2.json") {
		t.Fatalf("%d entries within two manifests' bytes, newest %s", len(small.entries), small.entries[0].path)
	}
	tiny := Cache{maxBytes: st.Size() - 1}
	if _, err := tiny.Read(filepath.Join(dir, "m0.json")); err != nil || len(tiny.entries) != 0 {
		t.Fatalf("a manifest larger than the budget: %d entries, %v", len(tiny.entries), err)
	}
}
