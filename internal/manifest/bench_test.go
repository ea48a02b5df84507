package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// benchManifest is a valid manifest of 20,000 files.
func benchManifest() *Manifest {
	m := valid()
	h := strings.Repeat("a", 64)
	m.Files = m.Files[:1]
	for i := 0; i < 20000; i++ {
		m.Files = append(m.Files, Entry{Path: fmt.Sprintf("storage/verification/diff-%05d.png", i), Type: TypeFile, Size: 1, SHA256: h, Mode: 0o644})
	}
	m.TotalBytes = 20000 + m.Database.Size
	return m
}

// BenchmarkEncode measures encoding a manifest of 20,000 files as Write does.
func BenchmarkEncode(b *testing.B) {
	m := benchManifest()
	data, err := encode(m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := encode(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode measures reading and validating a manifest of 20,000 files.
func BenchmarkDecode(b *testing.B) {
	data, _ := json.Marshal(benchManifest())
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
