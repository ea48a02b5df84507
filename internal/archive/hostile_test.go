package archive_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

type hostileEntry struct {
	hdr  tar.Header
	data string
}

// craft builds a tar.gz of entries and a manifest whose archive checksum
// matches it and whose files list the given entries (as an attacker could).
func craft(t testing.TB, entries []hostileEntry, listed []string) ([]byte, *manifest.Manifest) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	m := &manifest.Manifest{FormatVersion: 1, ID: "20250101_010101", Kind: manifest.KindManual, Paths: []string{"storage"}}
	inManifest := map[string]bool{}
	for _, l := range listed {
		inManifest[l] = true
	}
	for _, e := range entries {
		h := e.hdr
		h.ModTime = time.Unix(1700000000, 0)
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.data))
		}
		name := strings.TrimSuffix(h.Name, "/")
		if inManifest[name] {
			inManifest[name] = false
			me := manifest.Entry{Path: name, Mode: 0o644, ModTime: h.ModTime}
			switch h.Typeflag {
			case tar.TypeDir:
				me.Type = manifest.TypeDir
			case tar.TypeSymlink:
				me.Type, me.Link = manifest.TypeSymlink, h.Linkname
			default:
				sum := sha256.Sum256([]byte(e.data))
				me.Type, me.Size, me.SHA256 = manifest.TypeFile, h.Size, hex.EncodeToString(sum[:])
				m.TotalBytes += h.Size
			}
			m.Files = append(m.Files, me)
		}
	}
	tw.Close()
	gz.Close()
	sum := sha256.Sum256(buf.Bytes())
	m.Archive = manifest.FileRef{File: manifest.ArchiveName(m.ID), SHA256: hex.EncodeToString(sum[:]), Size: int64(buf.Len())}
	return buf.Bytes(), m
}

func dir(name string) hostileEntry {
	return hostileEntry{hdr: tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: 0o755}}
}
func file(name, data string) hostileEntry {
	return hostileEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg}, data: data}
}
func link(name, target string, flag byte) hostileEntry {
	return hostileEntry{hdr: tar.Header{Name: name, Typeflag: flag, Linkname: target}}
}

func TestHostileArchivesAreRefused(t *testing.T) {
	cases := []struct {
		name    string
		entries []hostileEntry
		listed  []string
		want    string
	}{
		{"dot-dot", []hostileEntry{dir("storage"), file("storage/../../evil", "x")}, []string{"storage"}, "not clean"},
		{"leading dot-dot", []hostileEntry{dir("storage"), file("../evil", "x")}, []string{"storage"}, "escapes"},
		{"absolute", []hostileEntry{dir("storage"), file("/etc/evil", "x")}, []string{"storage"}, "absolute"},
		{"symlink absolute", []hostileEntry{dir("storage"), link("storage/l", "/etc", tar.TypeSymlink)}, []string{"storage"}, "absolute path"},
		{"symlink escaping", []hostileEntry{dir("storage"), link("storage/l", "../../etc", tar.TypeSymlink)}, []string{"storage"}, "escapes"},
		{"entry through symlink", []hostileEntry{dir("storage"), dir("storage/real"), link("storage/l", "real", tar.TypeSymlink), file("storage/l/x", "x")},
			[]string{"storage", "storage/real", "storage/l", "storage/l/x"}, "beneath the symlink"},
		{"hard link", []hostileEntry{dir("storage"), file("storage/a", "x"), link("storage/b", "/etc/passwd", tar.TypeLink)}, []string{"storage", "storage/a"}, "hard link"},
		{"device", []hostileEntry{dir("storage"), {hdr: tar.Header{Name: "storage/dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}}, []string{"storage"}, "device"},
		{"fifo", []hostileEntry{dir("storage"), {hdr: tar.Header{Name: "storage/fifo", Typeflag: tar.TypeFifo}}}, []string{"storage"}, "FIFO"},
		{"not in manifest", []hostileEntry{dir("storage"), file("storage/a", "x"), file("storage/extra", "y")}, []string{"storage", "storage/a"}, "not listed in the manifest"},
		{"duplicate", []hostileEntry{dir("storage"), file("storage/a", "x"), file("storage/a", "y")}, []string{"storage", "storage/a"}, "twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, m := craft(t, tc.entries, tc.listed)
			_, err := archive.Verify(context.Background(), bytes.NewReader(data), m, nil)
			if !errors.Is(err, archive.ErrUnsafe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify: want an unsafe-entry error containing %q, got %v", tc.want, err)
			}
			// Extraction refuses too, and writes nothing outside its target.
			base := t.TempDir()
			dest := filepath.Join(base, "staging")
			os.Mkdir(dest, 0o700)
			_, err = archive.Extract(context.Background(), bytes.NewReader(data), m, archive.ExtractOptions{Dest: dest})
			if !errors.Is(err, archive.ErrUnsafe) {
				t.Fatalf("extract: want an unsafe-entry error, got %v", err)
			}
			entries, _ := os.ReadDir(base)
			if len(entries) != 1 {
				t.Fatalf("something was written beside the staging directory: %v", entries)
			}
			if _, err := os.Lstat("/etc/evil"); err == nil {
				t.Fatal("/etc/evil was written")
			}
		})
	}
}

// A tiny archive that claims to expand past the manifest's total is stopped
// before it is read.
func TestDecompressionBombIsStopped(t *testing.T) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "storage/", Typeflag: tar.TypeDir, Mode: 0o755})
	const size = 64 << 20
	tw.WriteHeader(&tar.Header{Name: "storage/bomb", Typeflag: tar.TypeReg, Size: size, Mode: 0o644})
	zeros := make([]byte, 1<<20)
	for i := 0; i < size/len(zeros); i++ {
		tw.Write(zeros)
	}
	tw.Close()
	gz.Close()
	if buf.Len() > 256<<10 {
		t.Fatalf("bomb is %d bytes", buf.Len())
	}
	sum := sha256.Sum256(buf.Bytes())
	m := &manifest.Manifest{FormatVersion: 1, ID: "20250101_010101", Kind: manifest.KindManual, Paths: []string{"storage"},
		Archive: manifest.FileRef{File: manifest.ArchiveName("20250101_010101"), SHA256: hex.EncodeToString(sum[:]), Size: int64(buf.Len())},
		Files: []manifest.Entry{{Path: "storage", Type: manifest.TypeDir, Mode: 0o755},
			{Path: "storage/bomb", Type: manifest.TypeFile, Size: 10, SHA256: strings.Repeat("a", 64)}},
		TotalBytes: 10}
	dest := t.TempDir()
	_, err := archive.Extract(context.Background(), bytes.NewReader(buf.Bytes()), m, archive.ExtractOptions{Dest: dest})
	if !errors.Is(err, archive.ErrIntegrity) || !strings.Contains(err.Error(), "67108864 bytes in the archive but 10 in the manifest") {
		t.Fatalf("want the size mismatch, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dest, "storage/bomb")); err == nil {
		t.Fatal("the bomb was written")
	}
}
