package manifest

import (
	"io/fs"
	"os"
	"sync"
)

// cacheSize is how many manifests a Cache keeps: those of the backup being
// restored and of the emergency backup, with room to spare.
const cacheSize = 4

// cacheBytes bounds the size of the manifest files a Cache keeps (decoded,
// a manifest takes two to three times its file's size): a tree of very many
// files has a manifest that is read afresh every time rather than held.
const cacheBytes = 16 << 20

// Cache keeps the last few manifests read or written through it (at most
// cacheSize, of cacheBytes in all), so that the steps of one operation, which
// run on the same worker one after another, decode a manifest once: the
// reference data's manifest (21,867 entries, 5.5 MB) took 31-48 ms to read,
// and a restore read it in five of its steps. Every use checks that the file
// is still the one decoded (same file, size and modification time); a file
// written again under the same name, as every write here renames a new file
// into place, is read afresh.
//
// A manifest it returns is a copy of the cached struct that shares its
// slices: a caller may set fields but must not change the elements of
// Files, Warnings or Paths, nor the Database it points to. The zero value is
// ready to use.
type Cache struct {
	mu       sync.Mutex
	entries  []cached // most recently used first
	maxBytes int64    // 0 means cacheBytes
}

type cached struct {
	path string
	info fs.FileInfo
	m    *Manifest
}

// Read returns the manifest at path, decoding it only if the cache does not
// hold this version of the file. Errors are those of Read.
func (c *Cache) Read(path string) (*Manifest, error) {
	info, err := os.Stat(path)
	if err == nil {
		if m := c.get(path, info); m != nil {
			return m, nil
		}
	}
	m, err := Read(path)
	if err != nil {
		return nil, err
	}
	if info != nil {
		// info was taken before the read: if the file was replaced in
		// between, the entry never matches again and is only a miss.
		c.put(path, info, m)
	}
	return copyOf(m), nil
}

// Put records m as the content of path, just written with Write.
func (c *Cache) Put(path string, m *Manifest) {
	if info, err := os.Stat(path); err == nil {
		c.put(path, info, copyOf(m))
	}
}

func (c *Cache) get(path string, info fs.FileInfo) *Manifest {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.path != path {
			continue
		}
		if !os.SameFile(e.info, info) || e.info.Size() != info.Size() || !e.info.ModTime().Equal(info.ModTime()) {
			return nil
		}
		copy(c.entries[1:i+1], c.entries[:i])
		c.entries[0] = e
		return copyOf(e.m)
	}
	return nil
}

func (c *Cache) put(path string, info fs.FileInfo, m *Manifest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.path == path {
			c.entries = append(c.entries[:i], c.entries[i+1:]...)
			break
		}
	}
	limit := c.maxBytes
	if limit == 0 {
		limit = cacheBytes
	}
	if info.Size() > limit {
		return
	}
	c.entries = append([]cached{{path: path, info: info, m: m}}, c.entries...)
	// The newest first, as many as fit.
	total := int64(0)
	for i, e := range c.entries {
		total += e.info.Size()
		if i == cacheSize || total > limit {
			clear(c.entries[i:])
			c.entries = c.entries[:i]
			break
		}
	}
}

func copyOf(m *Manifest) *Manifest {
	cp := *m
	return &cp
}
