package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// FuzzExtract feeds arbitrary bytes as an archive whose manifest matches them
// (so the archive checksum passes and the entry checks are what is tested):
// extraction either succeeds or fails with an integrity or unsafe-entry
// error, never panics, and never writes outside its directory.
func FuzzExtract(f *testing.F) {
	seeds := [][]hostileEntry{
		{dir("storage"), file("storage/a", "hello")},
		{dir("storage"), file("storage/../../evil", "x")},
		{dir("storage"), link("storage/l", "../../etc", tar.TypeSymlink)},
		{dir("storage"), dir("storage/d"), link("storage/l", "d", tar.TypeSymlink), file("storage/l/x", "x")},
		{dir("storage"), link("storage/h", "/etc/passwd", tar.TypeLink)},
		{dir("storage"), file("storage/a", "x"), file("storage/a", "y")},
		{dir("storage"), {hdr: tar.Header{Name: "storage/fifo", Typeflag: tar.TypeFifo}}},
	}
	for _, s := range seeds {
		data, _ := craft(f, s, nil)
		f.Add(data, "storage/a", int64(5))
	}
	f.Fuzz(func(t *testing.T, data []byte, listed string, size int64) {
		sum := sha256.Sum256(data)
		m := &manifest.Manifest{FormatVersion: 1, ID: "20250101_010101", Kind: manifest.KindManual, Paths: []string{"storage"},
			Archive: manifest.FileRef{File: manifest.ArchiveName("20250101_010101"), SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))},
			Files:   []manifest.Entry{{Path: "storage", Type: manifest.TypeDir, Mode: 0o755}}}
		if manifest.CheckPath(listed) == nil && strings.HasPrefix(listed, "storage/") && size >= 0 && size < 1<<20 {
			m.Files = append(m.Files, manifest.Entry{Path: listed, Type: manifest.TypeFile, Size: size, SHA256: strings.Repeat("0", 64)})
			m.TotalBytes = size
		}
		base := t.TempDir()
		dest := filepath.Join(base, "staging")
		os.Mkdir(dest, 0o700)
		_, err := archive.Extract(context.Background(), bytes.NewReader(data), m, archive.ExtractOptions{Dest: dest})
		if err != nil && !errors.Is(err, archive.ErrIntegrity) && !errors.Is(err, archive.ErrUnsafe) && !strings.Contains(err.Error(), "extract ") {
			t.Fatalf("unclassified error: %v", err)
		}
		entries, _ := os.ReadDir(base)
		if len(entries) != 1 {
			t.Fatalf("written beside the staging directory: %v", entries)
		}
	})
}
