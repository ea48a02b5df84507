package archive_test

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// benchTree writes a tree shaped like the application's (text logs that
// compress well, random blobs that do not), about mb MiB.
func benchTree(b *testing.B, mb int) string {
	b.Helper()
	root := b.TempDir()
	rng := rand.New(rand.NewSource(1))
	line := "2025-12-01T10:00:00Z info trade filled symbol AAPL qty 100 price 187.23 latency 3ms\n"
	logs := []byte(strings.Repeat(line, (mb<<20)/3/len(line)))
	os.MkdirAll(filepath.Join(root, "storage/logs"), 0o755)
	os.WriteFile(filepath.Join(root, "storage/logs/app.log"), logs, 0o644)
	blob := make([]byte, (mb<<20)*2/3/16)
	for i := 0; i < 16; i++ {
		rng.Read(blob)
		p := filepath.Join(root, "storage/recordings", "rec-"+string(rune('a'+i))+".webm")
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, blob, 0o644)
	}
	return root
}

func benchArchive(b *testing.B, root string) ([]byte, *manifest.Manifest) {
	b.Helper()
	var buf bytes.Buffer
	res, err := archive.Create(context.Background(), &buf, archive.CreateOptions{Root: root, Paths: []string{"storage"}})
	if err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), &manifest.Manifest{FormatVersion: 1, ID: "20250101_010101", Kind: manifest.KindManual, Paths: []string{"storage"},
		Archive: manifest.FileRef{File: manifest.ArchiveName("20250101_010101"), SHA256: res.SHA256, Size: res.Size},
		Files:   res.Entries, TotalBytes: res.TotalBytes}
}

// BenchmarkCreate measures archiving (read, hash, tar, gzip members on every core) in bytes of input.
func BenchmarkCreate(b *testing.B) {
	root := benchTree(b, 64)
	_, m := benchArchive(b, root)
	b.SetBytes(m.TotalBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := archive.Create(context.Background(), io.Discard, archive.CreateOptions{Root: root, Paths: []string{"storage"}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify measures reading an archive back against its manifest.
func BenchmarkVerify(b *testing.B) {
	data, m := benchArchive(b, benchTree(b, 64))
	b.SetBytes(m.TotalBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := archive.Verify(context.Background(), bytes.NewReader(data), m, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyWritten measures a backup's read-back, which does not hash
// the stream again; compare with BenchmarkVerify.
func BenchmarkVerifyWritten(b *testing.B) {
	data, m := benchArchive(b, benchTree(b, 64))
	b.SetBytes(m.TotalBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := archive.VerifyWritten(context.Background(), bytes.NewReader(data), m, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExtract measures verified extraction to disk.
func BenchmarkExtract(b *testing.B) {
	data, m := benchArchive(b, benchTree(b, 64))
	b.SetBytes(m.TotalBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dest := b.TempDir()
		if _, err := archive.Extract(context.Background(), bytes.NewReader(data), m, archive.ExtractOptions{Dest: dest}); err != nil {
			b.Fatal(err)
		}
	}
}
