package archive_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// Every file's sum in the result is the SHA-256 of its bytes, at sizes
// around the read chunk (256 KiB) and its multiples, several of each, and
// the dump's.
func TestFileSumsAtEveryChunkBoundary(t *testing.T) {
	const chunk = 256 << 10
	root := t.TempDir()
	want := map[string]string{}
	write := func(name string, data []byte) {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		want[name] = hex.EncodeToString(sum[:])
	}
	sizes := []int{0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, 3*chunk - 1, 4 * chunk, 5*chunk + 7, 5 << 20}
	for i, size := range sizes {
		for n := range 6 {
			write(fmt.Sprintf("storage/s%02d-%d.bin", i, n), randomBytes(t, size))
		}
	}
	dump := filepath.Join(t.TempDir(), "dump.sql")
	dumpData := randomBytes(t, 3*chunk)
	if err := os.WriteFile(dump, dumpData, 0o600); err != nil {
		t.Fatal(err)
	}
	dumpSum := sha256.Sum256(dumpData)
	opts := archive.CreateOptions{Root: root, Paths: []string{"storage"},
		Extra: []archive.ExtraFile{{ArchivePath: manifest.DumpName("20250101_010101"), Source: dump}}}

	res, err := archive.Create(context.Background(), io.Discard, opts)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, e := range res.Entries {
		if e.Type != manifest.TypeFile {
			continue
		}
		files++
		if e.SHA256 != want[e.Path] {
			t.Errorf("%s (%d bytes): sha256 %q, want %q", e.Path, e.Size, e.SHA256, want[e.Path])
		}
	}
	if files != len(want) {
		t.Errorf("%d files in the result, want %d", files, len(want))
	}
	if got := res.Extra[0].SHA256; got != hex.EncodeToString(dumpSum[:]) {
		t.Errorf("dump: sha256 %q, want %x", got, dumpSum)
	}
}

// A file whose bytes are not the manifest's fails a verification and a
// read-back, named, whatever its size.
func TestEveryFileIsCheckedAgainstItsSum(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 3<<20)
	path, m := create(t, src, false)
	lied := 0
	for i, e := range m.Files {
		if e.Type != manifest.TypeFile || e.Size == 0 {
			continue
		}
		lied++
		for name, check := range map[string]func(context.Context, io.Reader, *manifest.Manifest, func(archive.Progress)) (*archive.Report, error){
			"Verify": archive.Verify, "VerifyWritten": archive.VerifyWritten,
		} {
			liar := *m
			liar.Files = slices.Clone(m.Files)
			liar.Files[i].SHA256 = strings.Repeat("0", 64)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = check(context.Background(), f, &liar, nil)
			f.Close()
			if !errors.Is(err, archive.ErrIntegrity) || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), e.Path) {
				t.Errorf("%s of an archive whose manifest lies about %s (%d bytes): %v", name, e.Path, e.Size, err)
			}
		}
	}
	if lied < 4 {
		t.Fatalf("only %d files to lie about", lied)
	}
}

// CheckTree reads every file, on one goroutine or several: same-size
// changes in any of many files are each found, listed in order, and the
// last progress report counts every byte.
func TestCheckTreeReadsEveryFile(t *testing.T) {
	root := t.TempDir()
	for i := range 200 {
		p := filepath.Join(root, "storage", fmt.Sprintf("d%d/f%03d.bin", i%7, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, randomBytes(t, 1+i*997), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, m := create(t, root, false)
	var last archive.Progress
	rep, err := archive.CheckTree(context.Background(), root, m, func(p archive.Progress) { last = p })
	if err != nil {
		t.Fatalf("unchanged tree: %v", err)
	}
	if rep.Files != 200 || last.Files != 200 || last.Bytes != m.TotalBytes {
		t.Errorf("report %+v, last progress %+v; want 200 files, %d bytes", rep, last, m.TotalBytes)
	}
	var want []string
	for i := 3; i < 200; i += 17 {
		name := fmt.Sprintf("storage/d%d/f%03d.bin", i%7, i)
		p := filepath.Join(root, filepath.FromSlash(name))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 1
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	slices.Sort(want)
	for _, readers := range []int{1, 3} {
		_, err = archive.CheckTreeReaders(context.Background(), root, m, readers, nil)
		var mis *archive.TreeMismatch
		if !errors.As(err, &mis) || !slices.Equal(mis.Different, want) || len(mis.Missing)+len(mis.Extra) != 0 {
			t.Fatalf("%d readers: want %v different, got %v", readers, want, err)
		}
	}
}

// A check cancelled part way returns the context's error once its readers
// have stopped, not a list of differences.
func TestCheckTreeStopsWhenCancelled(t *testing.T) {
	root := t.TempDir()
	for i := range 50 {
		p := filepath.Join(root, "storage", fmt.Sprintf("f%03d.bin", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, randomBytes(t, 64<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, m := create(t, root, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := archive.CheckTree(ctx, root, m, func(archive.Progress) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled check: %v, want context.Canceled", err)
	}
}
