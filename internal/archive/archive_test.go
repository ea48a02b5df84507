package archive_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/pgzip"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// tree builds a storage tree with the awkward cases: unicode names, empty
// files and directories, several modes, old mtimes, a symlink, a large file.
func tree(t *testing.T, root string, large int) {
	t.Helper()
	mtime := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	files := map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"storage/logs/app-000.log":              {[]byte(strings.Repeat("2025-12-01 info trade filled\n", 1000)), 0o644},
		"storage/logs/empty.log":                {nil, 0o600},
		"storage/recordings/réunion ✓ 日本.webm":  {randomBytes(t, 70_000), 0o640},
		"storage/verification/diff 00001.png":   {randomBytes(t, 5000), 0o444},
		"storage/chroma/run.sh":                 {[]byte("#!/bin/sh\necho hi\n"), 0o755},
		"storage/chroma/chroma.sqlite3":         {randomBytes(t, large), 0o644},
		"storage/deep/a/b/c/d/e/f/g/h/file.txt": {[]byte("deep"), 0o644},
	}
	for name, f := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "storage/empty-dir"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../logs/app-000.log", filepath.Join(root, "storage/chroma/latest.log")); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// create archives root's storage/ (and an extra "dump") into dir and returns
// the archive path and its manifest.
func create(t *testing.T, root string, extra bool) (string, *manifest.Manifest) {
	t.Helper()
	dir := t.TempDir()
	opts := archive.CreateOptions{Root: root, Paths: []string{"storage"}}
	var dumpEntry *manifest.Database
	if extra {
		src := filepath.Join(dir, "dump.sql")
		if err := os.WriteFile(src, []byte("CREATE TABLE x();\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		opts.Extra = []archive.ExtraFile{{ArchivePath: manifest.DumpName("20250101_010101"), Source: src}}
	}
	path := filepath.Join(dir, manifest.ArchiveName("20250101_010101"))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := archive.Create(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if extra {
		e := res.Extra[0]
		dumpEntry = &manifest.Database{File: e.Path, ArchivePath: e.Path, SHA256: e.SHA256, Size: e.Size, Format: "plain", Name: "vulcan"}
	}
	m := &manifest.Manifest{
		FormatVersion: 2, ID: "20250101_010101", Kind: manifest.KindManual, CreatedAt: time.Now().UTC(), Paths: []string{"storage"},
		Archive: manifest.FileRef{File: manifest.ArchiveName("20250101_010101"), SHA256: res.SHA256, Size: res.Size},
		Files:   res.Entries, Database: dumpEntry, Warnings: res.Warnings, TotalBytes: res.TotalBytes, ToolVersion: "test",
		Members: res.Members,
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("manifest of a fresh archive does not validate: %v", err)
	}
	st, _ := os.Stat(path)
	if st.Size() != res.Size {
		t.Fatalf("archive is %d bytes, result says %d", st.Size(), res.Size)
	}
	return path, m
}

func verifyFile(t *testing.T, path string, m *manifest.Manifest) (*archive.Report, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return archive.Verify(context.Background(), f, m, nil)
}

func TestRoundTripByteForByte(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 32<<20)
	path, m := create(t, src, true)

	rep, err := verifyFile(t, path, m)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if rep.Files != 8 || rep.Links != 1 {
		t.Fatalf("report %+v, want 8 files (7 + dump) and 1 link", rep)
	}

	dest := t.TempDir()
	f, _ := os.Open(path)
	defer f.Close()
	if _, err := archive.Extract(context.Background(), f, m, archive.ExtractOptions{Dest: dest}); err != nil {
		t.Fatalf("extract: %v", err)
	}
	if _, err := archive.CheckTree(context.Background(), dest, m, nil); err != nil {
		t.Fatalf("extracted tree: %v", err)
	}
	compareTrees(t, filepath.Join(src, "storage"), filepath.Join(dest, "storage"), true)

	// The manual procedure: plain tar restores the same bytes.
	manual := t.TempDir()
	out, err := exec.Command("tar", "-xzf", path, "-C", manual).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -xzf: %v\n%s", err, out)
	}
	compareTrees(t, filepath.Join(src, "storage"), filepath.Join(manual, "storage"), false)
	if data, err := os.ReadFile(filepath.Join(manual, "database/vulcan_db_20250101_010101.sql")); err != nil || string(data) != "CREATE TABLE x();\n" {
		t.Fatalf("tar -xzf database/: %q %v", data, err)
	}
}

// Large files one after another (screen recordings) are extracted byte for
// byte: the extraction's gathering buffer serves every file in turn, and
// the bytes on the disk, not only the stream's hashes, must be right.
func TestExtractsLargeFilesInARowByteForByte(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 10)
	// Some an odd number of the writer's 4 MiB chunks long, some even.
	for i, size := range []int{5<<20 + 1, 9<<20 + 4099, 13<<20 + 77, 6 << 20, 4<<20 + 12345, 8 << 20} {
		name := filepath.Join(src, fmt.Sprintf("storage/recordings/rec-%04d.webm", i))
		if err := os.WriteFile(name, randomBytes(t, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path, m := create(t, src, false)
	for round := range 3 {
		dest := t.TempDir()
		f, _ := os.Open(path)
		_, err := archive.Extract(context.Background(), f, m, archive.ExtractOptions{Dest: dest})
		f.Close()
		if err != nil {
			t.Fatalf("extract: %v", err)
		}
		if _, err := archive.CheckTree(context.Background(), dest, m, nil); err != nil {
			t.Fatalf("round %d, extracted tree: %v", round, err)
		}
		compareTrees(t, filepath.Join(src, "storage"), filepath.Join(dest, "storage"), true)
	}
}

// Archives of earlier releases are one pgzip member; they still verify and
// extract.
func TestOneMemberArchivesOfEarlierReleases(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 4<<20)
	path, m := create(t, src, true)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var old bytes.Buffer
	zw, _ := pgzip.NewWriterLevel(&old, gzip.DefaultCompression)
	zw.SetConcurrency(1<<20, 4)
	if _, err := io.Copy(zw, zr); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(old.Bytes())
	m.Archive.SHA256, m.Archive.Size = hex.EncodeToString(sum[:]), int64(old.Len())
	if err := os.WriteFile(path, old.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyFile(t, path, m); err != nil {
		t.Fatalf("verify a one-member archive: %v", err)
	}
	dest := t.TempDir()
	if _, err := archive.Extract(context.Background(), bytes.NewReader(old.Bytes()), m, archive.ExtractOptions{Dest: dest}); err != nil {
		t.Fatalf("extract a one-member archive: %v", err)
	}
	compareTrees(t, filepath.Join(src, "storage"), filepath.Join(dest, "storage"), true)
}

// compareTrees checks every entry of want is in got with the same type,
// content, mode and (with times) mtime, and nothing else is.
func compareTrees(t *testing.T, want, got string, times bool) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(want, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		wi, _ := os.Lstat(p)
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s missing: %v", rel, err)
			return nil
		}
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		if times && !d.IsDir() && wi.Mode()&os.ModeSymlink == 0 && !wi.ModTime().Truncate(time.Second).Equal(gi.ModTime()) {
			t.Errorf("%s mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
		}
		switch {
		case wi.Mode()&os.ModeSymlink != 0:
			a, _ := os.Readlink(p)
			b, _ := os.Readlink(filepath.Join(got, rel))
			if a != b {
				t.Errorf("%s links to %q, want %q", rel, b, a)
			}
		case wi.Mode().IsRegular():
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(filepath.Join(got, rel))
			if !bytes.Equal(a, b) {
				t.Errorf("%s content differs", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = filepath.WalkDir(got, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(got, p)
		if err == nil && !seen[rel] {
			t.Errorf("unexpected %s", rel)
		}
		return nil
	})
}

func TestFlippedByteNamesTheChecksum(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 1<<20)
	path, m := create(t, src, true)
	data, _ := os.ReadFile(path)
	for _, off := range []int{len(data) / 2, 20, len(data) - 3} {
		bad := bytes.Clone(data)
		bad[off] ^= 0x01
		p := filepath.Join(t.TempDir(), "bad.tar.gz")
		os.WriteFile(p, bad, 0o600)
		_, err := verifyFile(t, p, m)
		if !errors.Is(err, archive.ErrIntegrity) || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("flip at %d: want an integrity error naming the checksum, got %v", off, err)
		}
		// The same when the damage surfaces while a file is written out.
		if err := extractFile(t, p, m); !errors.Is(err, archive.ErrIntegrity) || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("extract, flip at %d: want an integrity error naming the checksum, got %v", off, err)
		}
	}
}

// The read-back of a freshly written archive does not hash the stream again,
// yet a damaged byte in a member's header, data or trailer still fails it:
// through the member's fixed header, the entry it belongs to or the member's
// CRC-32 and size.
func TestVerifyWrittenFindsDamage(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 1<<20)
	path, m := create(t, src, true)
	verifyWritten := func(p string) (*archive.Report, error) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return archive.VerifyWritten(context.Background(), f, m, nil)
	}
	got, err := verifyWritten(path)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := verifyFile(t, path, m); *got != *want {
		t.Fatalf("report %+v, Verify says %+v", *got, *want)
	}
	data, _ := os.ReadFile(path)
	write := func(b []byte) string {
		p := filepath.Join(t.TempDir(), "bad.tar.gz")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, off := range []int{4, 17, 20, len(data) / 3, len(data) / 2, len(data) - 3} {
		bad := bytes.Clone(data)
		bad[off] ^= 0x01
		if _, err := verifyWritten(write(bad)); !errors.Is(err, archive.ErrIntegrity) {
			t.Errorf("flip at %d: want an integrity error, got %v", off, err)
		}
	}
	if _, err := verifyWritten(write(data[:len(data)/3])); !errors.Is(err, archive.ErrIntegrity) {
		t.Errorf("truncated: want an integrity error, got %v", err)
	}
	if _, err := verifyWritten(write(append(bytes.Clone(data), 0))); !errors.Is(err, archive.ErrIntegrity) {
		t.Errorf("one byte more: want an integrity error, got %v", err)
	}
}

// extractFile extracts the archive at p into a new directory.
func extractFile(t *testing.T, p string, m *manifest.Manifest) error {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = archive.Extract(context.Background(), f, m, archive.ExtractOptions{Dest: t.TempDir()})
	return err
}

func TestTruncatedArchive(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 1<<20)
	path, m := create(t, src, false)
	data, _ := os.ReadFile(path)
	p := filepath.Join(t.TempDir(), "short.tar.gz")
	os.WriteFile(p, data[:len(data)/3], 0o600)
	_, err := verifyFile(t, p, m)
	if !errors.Is(err, archive.ErrIntegrity) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("want an integrity error saying truncated, got %v", err)
	}
	if err := extractFile(t, p, m); !errors.Is(err, archive.ErrIntegrity) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("extract: want an integrity error saying truncated, got %v", err)
	}
}

func TestManifestThatLies(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 1<<20)
	path, m := create(t, src, false)
	for i := range m.Files {
		if m.Files[i].Type == manifest.TypeFile && m.Files[i].Size > 0 {
			m.Files[i].SHA256 = strings.Repeat("0", 64)
			break
		}
	}
	_, err := verifyFile(t, path, m)
	if !errors.Is(err, archive.ErrIntegrity) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("want a per-file checksum mismatch, got %v", err)
	}
}

func TestCheckTreeFindsDifferences(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 1000)
	_, m := create(t, src, false)
	os.WriteFile(filepath.Join(src, "storage/logs/app-000.log"), []byte("changed"), 0o644)
	os.Remove(filepath.Join(src, "storage/logs/empty.log"))
	os.WriteFile(filepath.Join(src, "storage/new.txt"), []byte("x"), 0o644)
	_, err := archive.CheckTree(context.Background(), src, m, nil)
	var mis *archive.TreeMismatch
	if !errors.As(err, &mis) {
		t.Fatalf("want a mismatch, got %v", err)
	}
	if len(mis.Missing) != 1 || len(mis.Extra) != 1 || len(mis.Different) != 1 {
		t.Fatalf("mismatch %+v", mis)
	}
}

// The layout check sees sizes, modes, missing and extra entries, but not a
// same-size change of content, which it does not read.
func TestCheckTreeLayout(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 1000)
	_, m := create(t, src, false)
	if _, err := archive.CheckTreeLayout(context.Background(), src, m, nil); err != nil {
		t.Fatalf("unchanged tree: %v", err)
	}
	log := filepath.Join(src, "storage/logs/app-000.log")
	data, _ := os.ReadFile(log)
	data[0] ^= 0xff
	os.WriteFile(log, data, 0o644)
	if _, err := archive.CheckTreeLayout(context.Background(), src, m, nil); err != nil {
		t.Fatalf("same-size change: %v (the layout check must not read contents)", err)
	}
	os.Chmod(log, 0o600)
	os.Remove(filepath.Join(src, "storage/logs/empty.log"))
	_, err := archive.CheckTreeLayout(context.Background(), src, m, nil)
	var mis *archive.TreeMismatch
	if !errors.As(err, &mis) || len(mis.Missing) != 1 || len(mis.Different) != 1 {
		t.Fatalf("want one missing and one different, got %v", err)
	}
}

// An archived setuid or setgid file (the worker runs as root) is restored
// without the bit; the manifest keeps the recorded mode, and the restored
// tree still checks against it.
func TestExtractDropsSetIDBits(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 10)
	tool := filepath.Join(src, "storage/logs/tool")
	os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755)
	if err := os.Chmod(tool, 0o755|os.ModeSetuid|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	p, m := create(t, src, false)
	var recorded bool
	for _, e := range m.Files {
		if e.Path == "storage/logs/tool" {
			recorded = archive.SetID(e.Mode)
		}
	}
	if !recorded {
		t.Fatal("the manifest does not record the setuid bit")
	}
	dest := t.TempDir()
	f, _ := os.Open(p)
	defer f.Close()
	if _, err := archive.Extract(context.Background(), f, m, archive.ExtractOptions{Dest: dest}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dest, "storage/logs/tool"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || st.Mode().Perm() != 0o755 {
		t.Fatalf("restored mode %v, want 0755 without setuid/setgid", st.Mode())
	}
	if _, err := archive.CheckTreeLayout(context.Background(), dest, m, nil); err != nil {
		t.Fatalf("the restored tree does not check: %v", err)
	}
}

// Files that change while they are read are archived consistently and
// recorded as warnings.
func TestFilesChangingDuringBackup(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "storage")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "a-grows.log"), randomBytes(t, 20<<20), 0o644)
	os.WriteFile(filepath.Join(dir, "b-shrinks.log"), randomBytes(t, 20<<20), 0o644)
	os.WriteFile(filepath.Join(dir, "c-vanishes.log"), []byte("bye"), 0o644)
	var calls int
	progress := func(p archive.Progress) {
		calls++
		switch p.Path {
		case "storage/a-grows.log":
			f, _ := os.OpenFile(filepath.Join(dir, "a-grows.log"), os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte("more data"))
			f.Close()
		case "storage/b-shrinks.log":
			os.Truncate(filepath.Join(dir, "b-shrinks.log"), 9<<20)
			os.Remove(filepath.Join(dir, "c-vanishes.log"))
		}
	}
	out := filepath.Join(t.TempDir(), "a.tar.gz")
	f, _ := os.Create(out)
	res, err := archive.Create(context.Background(), f, archive.CreateOptions{Root: root, Paths: []string{"storage"}, Progress: progress})
	f.Close()
	if err != nil {
		t.Fatalf("backup failed: %v", err)
	}
	got := map[string]string{}
	for _, w := range res.Warnings {
		got[w.Path] = w.Message
	}
	for path, want := range map[string]string{"storage/a-grows.log": "grew", "storage/b-shrinks.log": "shrank", "storage/c-vanishes.log": "vanished"} {
		if !strings.Contains(got[path], want) {
			t.Errorf("warning for %s = %q, want %q (all: %v)", path, got[path], want, res.Warnings)
		}
	}
	m := &manifest.Manifest{FormatVersion: 1, ID: "20250101_010101", Kind: manifest.KindManual, Paths: []string{"storage"},
		Archive: manifest.FileRef{File: manifest.ArchiveName("20250101_010101"), SHA256: res.SHA256, Size: res.Size},
		Files:   res.Entries, TotalBytes: res.TotalBytes}
	if _, err := verifyFile(t, out, m); err != nil {
		t.Fatalf("an archive with changed files must still verify: %v", err)
	}
}

// A file replaced by a symlink after the walk saw it is not followed: the
// link's target, here outside the tree, is never archived. A large file is
// opened once the group of small files before it is written, after the
// walk has seen it (TestGroupReaderDoesNotFollowASymlink covers the small
// files of a group).
func TestFileReplacedBySymlinkIsNotFollowed(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "storage")
	os.MkdirAll(dir, 0o755)
	// Progress comes every 8 MiB: the small file that crosses it is the
	// group written just before b.log.
	os.WriteFile(filepath.Join(dir, "a.log"), randomBytes(t, 8<<20-10<<10), 0o644)
	os.WriteFile(filepath.Join(dir, "b-before.log"), randomBytes(t, 100<<10), 0o644)
	os.WriteFile(filepath.Join(dir, "b.log"), randomBytes(t, 2<<20), 0o644)
	os.WriteFile(filepath.Join(root, "secret"), []byte("not for the backup"), 0o600)
	progress := func(p archive.Progress) {
		if p.Path == "storage/b-before.log" {
			os.Remove(filepath.Join(dir, "b.log"))
			if err := os.Symlink("../secret", filepath.Join(dir, "b.log")); err != nil {
				t.Error(err)
			}
		}
	}
	var buf bytes.Buffer
	res, err := archive.Create(context.Background(), &buf, archive.CreateOptions{Root: root, Paths: []string{"storage"}, Progress: progress})
	if err != nil {
		t.Fatalf("backup failed: %v", err)
	}
	if len(res.Warnings) != 1 || res.Warnings[0].Path != "storage/b.log" || !strings.Contains(res.Warnings[0].Message, "replaced by a symlink") {
		t.Errorf("warnings %v, want one for storage/b.log replaced by a symlink", res.Warnings)
	}
	for _, e := range res.Entries {
		if e.Path == "storage/b.log" {
			t.Errorf("storage/b.log archived as %+v", e)
		}
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(zr)
	if bytes.Contains(all, []byte("not for the backup")) {
		t.Error("the symlink's target was archived")
	}
}

func TestMissingPath(t *testing.T) {
	root := t.TempDir()
	_, err := archive.Create(context.Background(), &bytes.Buffer{}, archive.CreateOptions{Root: root, Paths: []string{"storage"}})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "storage")) {
		t.Fatalf("want an error naming the missing path, got %v", err)
	}
	res, err := archive.Create(context.Background(), &bytes.Buffer{}, archive.CreateOptions{Root: root, Paths: []string{"storage"}, AllowMissing: true})
	if err != nil || len(res.Warnings) != 1 {
		t.Fatalf("AllowMissing: %v %+v", err, res)
	}
}

// failingReader returns err once n bytes of r have been read.
type failingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	k, err := f.r.Read(p)
	f.n -= int64(k)
	return k, err
}

// A read error (a failing disk) is reported as such, not as damage to the
// archive, at any point of the stream.
func TestReadErrorIsReportedAsSuch(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 6<<20)
	path, m := create(t, src, true)
	data, _ := os.ReadFile(path)
	eio := &os.PathError{Op: "read", Path: path, Err: syscall.EIO}
	for _, at := range []int64{0, 100, int64(len(data)) / 2, int64(len(data)) - 1} {
		r := &failingReader{r: bytes.NewReader(data), n: at, err: eio}
		_, err := archive.Verify(context.Background(), r, m, nil)
		if !errors.Is(err, syscall.EIO) || errors.Is(err, archive.ErrIntegrity) {
			t.Errorf("read error after %d bytes: got %v, want the EIO and no integrity error", at, err)
		}
	}
}

// The backup's read-back reads around the page cache (fsutil.DirectReader):
// the archive verifies the same, and damage is found the same.
func TestVerifyThroughDirectReader(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 6<<20)
	path, m := create(t, src, true)
	verify := func(p string) error {
		r, err := fsutil.OpenDirect(p)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		_, err = archive.Verify(context.Background(), r, m, nil)
		return err
	}
	if err := verify(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 0x10
	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	os.WriteFile(bad, data, 0o600)
	if err := verify(bad); !errors.Is(err, archive.ErrIntegrity) {
		t.Fatalf("damaged archive through a DirectReader: got %v, want an integrity error", err)
	}
}

// The fast levels (emergency backups are Stored): the archive is read by
// every gzip reader, and verifies and extracts as any other; HuffmanOnly
// still compresses text, Stored does not compress at all.
func TestFastLevelArchives(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 1<<20)
	os.WriteFile(filepath.Join(src, "storage/logs/big.log"), []byte(strings.Repeat("2025-12-01T10:00:00Z info trade filled AAPL qty 100\n", 40000)), 0o644)
	sizes := map[int]int64{}
	for _, level := range []int{archive.Stored, archive.HuffmanOnly, archive.DefaultLevel} {
		var buf bytes.Buffer
		res, err := archive.Create(context.Background(), &buf, archive.CreateOptions{Root: src, Paths: []string{"storage"}, Level: level})
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		sizes[level] = res.Size
		if compresses := res.Size < res.TotalBytes; compresses != (level != archive.Stored) {
			t.Fatalf("level %d: %d bytes of archive for %d of content", level, res.Size, res.TotalBytes)
		}
		m := &manifest.Manifest{FormatVersion: 1, ID: "20250101_010101", Kind: manifest.KindEmergency, Paths: []string{"storage"},
			Archive: manifest.FileRef{File: manifest.ArchiveName("20250101_010101"), SHA256: res.SHA256, Size: res.Size},
			Files:   res.Entries, TotalBytes: res.TotalBytes}
		if _, err := archive.Verify(context.Background(), bytes.NewReader(buf.Bytes()), m, nil); err != nil {
			t.Fatalf("level %d: verify: %v", level, err)
		}
		dest := t.TempDir()
		if _, err := archive.Extract(context.Background(), bytes.NewReader(buf.Bytes()), m, archive.ExtractOptions{Dest: dest}); err != nil {
			t.Fatalf("level %d: extract: %v", level, err)
		}
		compareTrees(t, filepath.Join(src, "storage"), filepath.Join(dest, "storage"), true)
		zr, err := gzip.NewReader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, zr); err != nil || n < res.TotalBytes {
			t.Fatalf("level %d: a plain gzip reader read %d bytes: %v", level, n, err)
		}
	}
	if sizes[archive.Stored] <= sizes[archive.HuffmanOnly] || sizes[archive.HuffmanOnly] <= sizes[archive.DefaultLevel] {
		t.Fatalf("Stored %d bytes, HuffmanOnly %d bytes, level %d %d bytes: the levels were not applied",
			sizes[archive.Stored], sizes[archive.HuffmanOnly], archive.DefaultLevel, sizes[archive.DefaultLevel])
	}
}
