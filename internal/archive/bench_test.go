package archive_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
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

// BenchmarkBackup measures a backup's archive step and read-back on files
// (archive.CreateFile, then VerifyWritten read around the page cache), with
// every file read ("full") and with the tree unchanged since the previous
// backup, whose members are copied ("copying"); cpu-s/op is the process's
// user and system time.
func BenchmarkBackup(b *testing.B) {
	root := benchTree(b, 64)
	for i := range 2000 {
		p := filepath.Join(root, "storage/logs/small", fmt.Sprintf("%03d/entry-%05d.json", i%50, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf(`{"n": %d, "status": "ok"}`+"\n", i), 1+i%60)), 0o644)
	}
	dir := b.TempDir()
	backup := func(b *testing.B, id string, prev *manifest.Manifest) *manifest.Manifest {
		opts := archive.CreateOptions{Root: root, Paths: []string{"storage"}}
		if prev != nil {
			f, err := fsutil.OpenDirectAt(filepath.Join(dir, prev.Archive.File))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			opts.Previous = &archive.Previous{Manifest: prev, Archive: f}
		}
		path := filepath.Join(dir, manifest.ArchiveName(id))
		res, err := archive.CreateFile(context.Background(), path, opts)
		if err != nil {
			b.Fatal(err)
		}
		m := &manifest.Manifest{FormatVersion: manifest.FormatVersion, ID: id, Kind: manifest.KindManual, Paths: opts.Paths,
			Archive: manifest.FileRef{File: manifest.ArchiveName(id), SHA256: res.SHA256, Size: res.Size},
			Files:   res.Entries, TotalBytes: res.TotalBytes, Members: res.Members}
		r, err := fsutil.OpenDirect(path)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		if _, err := archive.VerifyWritten(context.Background(), r, m, nil); err != nil {
			b.Fatal(err)
		}
		return m
	}
	first := backup(b, "20250101_010101", nil)
	for _, mode := range []string{"full", "copying"} {
		b.Run(mode, func(b *testing.B) {
			prev := first
			if mode == "full" {
				prev = nil
			}
			b.SetBytes(first.TotalBytes)
			start := cpuTime()
			b.ResetTimer()
			for range b.N {
				m := backup(b, "20250102_010101", prev)
				if mode == "copying" && m.Members.ReusedMembers != len(m.Members.List)-1 {
					b.Fatalf("copied %d of %d members", m.Members.ReusedMembers, len(m.Members.List))
				}
			}
			b.StopTimer()
			b.ReportMetric((cpuTime()-start).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCreateSmallFiles measures archiving a tree of many small files,
// where opening, reading and closing each file costs more than compressing
// it; cpu-s/op is the process's user and system time.
func BenchmarkCreateSmallFiles(b *testing.B) {
	root := b.TempDir()
	for i := range 10000 {
		p := filepath.Join(root, "storage/verification", fmt.Sprintf("%02d/v-%05d.json", i%20, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf(`{"part": "p-%d", "ok": true}`+"\n", i), 1+i%40)), 0o644)
	}
	res, err := archive.Create(context.Background(), io.Discard, archive.CreateOptions{Root: root, Paths: []string{"storage"}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(res.TotalBytes)
	start := cpuTime()
	b.ResetTimer()
	for range b.N {
		if _, err := archive.Create(context.Background(), io.Discard, archive.CreateOptions{Root: root, Paths: []string{"storage"}}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric((cpuTime()-start).Seconds()/float64(b.N), "cpu-s/op")
}
