package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// smallTree writes n small text files over a few directories, two large
// random files (one of several pieces) and a symlink.
func smallTree(t *testing.T, root string, n int) {
	t.Helper()
	for i := range n {
		p := filepath.Join(root, "storage", fmt.Sprintf("d%02d", i%7), fmt.Sprintf("f-%05d.json", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		body := strings.Repeat(fmt.Sprintf(`{"part": "p-%d", "ok": true}`+"\n", i), 1+i%40)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "storage/recordings"), 0o755)
	os.WriteFile(filepath.Join(root, "storage/recordings/a.webm"), randomBytes(t, 3<<20+12345), 0o644)
	os.WriteFile(filepath.Join(root, "storage/recordings/b.webm"), randomBytes(t, 1<<20), 0o644)
	os.Symlink("d00/f-00000.json", filepath.Join(root, "storage/first.json"))
}

// backup archives root's storage/ and a dump, copying from prev when given,
// and returns the archive's path and its manifest.
func backup(t *testing.T, root, id string, prev *manifest.Manifest) (string, *manifest.Manifest) {
	t.Helper()
	dir := filepath.Join(root, "backups")
	os.MkdirAll(dir, 0o755)
	dump := filepath.Join(dir, id+".sql")
	os.WriteFile(dump, []byte("-- dump "+id+"\nCREATE TABLE x();\n"), 0o600)
	opts := archive.CreateOptions{Root: root, Paths: []string{"storage"},
		Extra: []archive.ExtraFile{{ArchivePath: manifest.DumpName(id), Source: dump}}}
	if prev != nil {
		f, err := os.Open(filepath.Join(dir, prev.Archive.File))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		opts.Previous = &archive.Previous{Manifest: prev, Archive: f}
	}
	path := filepath.Join(dir, manifest.ArchiveName(id))
	res, err := archive.CreateFile(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	e := res.Extra[0]
	m := &manifest.Manifest{
		FormatVersion: manifest.FormatVersion, ID: id, Kind: manifest.KindManual, CreatedAt: time.Now().UTC(), Paths: []string{"storage"},
		Archive: manifest.FileRef{File: manifest.ArchiveName(id), SHA256: res.SHA256, Size: res.Size},
		Files:   res.Entries, Database: &manifest.Database{File: e.Path, ArchivePath: e.Path, SHA256: e.SHA256, Size: e.Size},
		Warnings: res.Warnings, TotalBytes: res.TotalBytes, Members: res.Members,
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("manifest of backup %s: %v", id, err)
	}
	if _, err := verifyFile(t, path, m); err != nil {
		t.Fatalf("backup %s does not verify: %v", id, err)
	}
	return path, m
}

// members returns the bytes of every member of the archive at path.
func members(t *testing.T, path string, m *manifest.Manifest) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, x := range m.Members.List {
		b := data[x.Offset : x.Offset+x.Length]
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != x.SHA256 {
			t.Fatalf("member at %d: sha256 differs from its table", x.Offset)
		}
		out = append(out, b)
	}
	return out
}

// Every member of whole records is a tar stream of its own holding exactly
// the entries its table names; a large file's pieces hold only that file.
func TestMembersAreCutAtFileBoundaries(t *testing.T) {
	root := t.TempDir()
	smallTree(t, root, 3000)
	path, m := backup(t, root, "20250101_010101", nil)
	names := func(i int) string {
		if i < len(m.Files) {
			e := m.Files[i]
			if e.Type == manifest.TypeDir {
				return e.Path + "/"
			}
			return e.Path
		}
		return m.Database.ArchivePath
	}
	groups, pieces := 0, map[string]int{}
	for i, b := range members(t, path, m) {
		x := m.Members.List[i]
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("member %d alone: %v", i, err)
		}
		if x.Piece > 0 {
			pieces[names(x.First)]++
			continue
		}
		groups++
		tr := tar.NewReader(bytes.NewReader(raw))
		var got []string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("member %d is not whole tar records: %v", i, err)
			}
			got = append(got, h.Name)
		}
		for k := range x.Count {
			if k >= len(got) || got[k] != names(x.First+k) {
				t.Fatalf("member %d holds %v, its table says entries %d+%d", i, got, x.First, x.Count)
			}
		}
		if len(got) != x.Count {
			t.Fatalf("member %d holds %d records, its table %d", i, len(got), x.Count)
		}
	}
	// 3.0 MiB + header: four pieces; exactly 1 MiB + header: two.
	if pieces["storage/recordings/a.webm"] != 4 || pieces["storage/recordings/b.webm"] != 2 || pieces[m.Database.ArchivePath] != 1 {
		t.Errorf("pieces %v", pieces)
	}
	if groups < 3 {
		t.Errorf("%d members of small files; the tree's records are several MiB", groups)
	}
}

// An unchanged tree gives the same archive byte for byte, copied member by
// member instead of read and compressed, and tar -xzf restores it.
func TestUnchangedTreeCopiesEveryMember(t *testing.T) {
	root := t.TempDir()
	smallTree(t, root, 3000)
	first, m1 := backup(t, root, "20250101_010101", nil)
	if !m1.Members.FullRead || m1.Members.ReusedMembers != 0 {
		t.Errorf("first backup: %+v", m1.Members)
	}
	second, m2 := backup(t, root, "20250102_010101", m1)
	a, b := members(t, first, m1), members(t, second, m2)
	// The dump (another name, other content) and the trailer are new.
	if len(a) != len(b) {
		t.Fatalf("%d members, then %d", len(a), len(b))
	}
	same := 0
	for i := range a {
		if bytes.Equal(a[i], b[i]) {
			same++
		}
	}
	if same < len(a)-2 {
		t.Errorf("%d of %d members byte-identical", same, len(a))
	}
	treeMembers := 0
	for _, x := range m1.Members.List {
		if x.First < len(m1.Files) && x.Count > 0 {
			treeMembers++
		}
	}
	if m2.Members.FullRead || m2.Members.ReusedFrom != m1.ID || m2.Members.ReusedMembers != treeMembers {
		t.Errorf("second backup reused %d of %d tree members from %q", m2.Members.ReusedMembers, treeMembers, m2.Members.ReusedFrom)
	}
	if m2.Members.ReusedBytes != m1.TotalBytes-m1.Database.Size {
		t.Errorf("reused %d bytes, the tree holds %d", m2.Members.ReusedBytes, m1.TotalBytes-m1.Database.Size)
	}
	out := untar(t, second)
	compareTrees(t, filepath.Join(root, "storage"), filepath.Join(out, "storage"), true)
}

// One changed small file changes its own member; the others are copied.
func TestOneChangedFileChangesOneMember(t *testing.T) {
	root := t.TempDir()
	smallTree(t, root, 3000)
	_, m1 := backup(t, root, "20250101_010101", nil)
	p := filepath.Join(root, "storage/d03/f-01000.json")
	if err := os.WriteFile(p, []byte(`{"changed": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, m2 := backup(t, root, "20250102_010101", m1)
	treeMembers := 0
	for _, x := range m2.Members.List {
		if x.First < len(m2.Files) && x.Count > 0 {
			treeMembers++
		}
	}
	if m2.Members.ReusedMembers != treeMembers-1 {
		t.Errorf("reused %d of %d tree members; one file changed", m2.Members.ReusedMembers, treeMembers)
	}
	for _, e := range m2.Files {
		if e.Path == "storage/d03/f-01000.json" && e.Size != 17 {
			t.Errorf("changed file recorded as %+v", e)
		}
	}
}

// A file rewritten with the same size and its mtime set back (its ctime
// moved) is read again, not copied.
func TestMtimeSetBackIsReadAgain(t *testing.T) {
	root := t.TempDir()
	smallTree(t, root, 200)
	p := filepath.Join(root, "storage/recordings/a.webm")
	old, _ := os.Stat(p)
	_, m1 := backup(t, root, "20250101_010101", nil)
	data, _ := os.ReadFile(p)
	data[100] ^= 0xff
	os.WriteFile(p, data, 0o644)
	if err := os.Chtimes(p, old.ModTime(), old.ModTime()); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); !st.ModTime().Equal(old.ModTime()) || st.Size() != old.Size() {
		t.Fatal("could not set the mtime back")
	}
	path, m2 := backup(t, root, "20250102_010101", m1)
	sum := sha256.Sum256(data)
	for _, e := range m2.Files {
		if e.Path == "storage/recordings/a.webm" && e.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("a.webm recorded with its old hash: copied though its ctime changed")
		}
	}
	out := untar(t, path)
	if got, _ := os.ReadFile(filepath.Join(out, "storage/recordings/a.webm")); !bytes.Equal(got, data) {
		t.Error("the archive holds the old content")
	}
}

// A previous archive damaged after its verification (a flipped byte in a
// member that would be copied) is found while copying: the files are read
// afresh, the backup says so, and the new archive holds the tree. A
// damaged group or first piece costs only its own files; a piece found
// damaged after earlier pieces of its file were written makes the archive
// start again, reading every file.
func TestDamagedPreviousMemberIsReadAfresh(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		piece      int
		again      bool
	}{
		{"small files", "storage/d02/f-00100.json", 0, false},
		{"large file, first piece", "storage/recordings/a.webm", 1, false},
		{"large file, later piece", "storage/recordings/a.webm", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			smallTree(t, root, 1500)
			first, m1 := backup(t, root, "20250101_010101", nil)
			idx := -1
			for i, e := range m1.Files {
				if e.Path == tc.path {
					idx = i
				}
			}
			var hit manifest.Member
			for _, x := range m1.Members.List {
				if idx >= x.First && idx < x.First+x.Count && x.Piece == tc.piece {
					hit = x
				}
			}
			if hit.Length == 0 {
				t.Fatalf("no member holds piece %d of %s", tc.piece, tc.path)
			}
			f, _ := os.OpenFile(first, os.O_RDWR, 0)
			b := make([]byte, 1)
			f.ReadAt(b, hit.Offset+hit.Length/2)
			b[0] ^= 0x01
			f.WriteAt(b, hit.Offset+hit.Length/2)
			f.Close()

			path, m2 := backup(t, root, "20250102_010101", m1)
			said := false
			for _, w := range m2.Warnings {
				if (tc.piece == 0 || w.Path == tc.path) && strings.Contains(w.Message, "read afresh") && strings.Contains(w.Message, "20250101_010101") && strings.Contains(w.Message, "sha256") {
					said = true
				}
			}
			if !said {
				t.Errorf("no warning of the damaged member: %v", m2.Warnings)
			}
			if tc.again {
				if !m2.Members.FullRead || m2.Members.ReusedMembers != 0 {
					t.Errorf("after a damaged later piece the archive was not written again reading every file: %+v", m2.Members)
				}
			} else if m2.Members.FullRead || m2.Members.ReusedMembers == 0 {
				t.Error("nothing else was copied")
			}
			out := untar(t, path)
			compareTrees(t, filepath.Join(root, "storage"), filepath.Join(out, "storage"), true)
		})
	}
}

// Members of a format 1 backup, or of another layout, are never copied.
func TestNoReuseWithoutAMatchingTable(t *testing.T) {
	root := t.TempDir()
	smallTree(t, root, 300)
	_, m1 := backup(t, root, "20250101_010101", nil)
	m1.Members.Layout = "files-v0"
	_, m2 := backup(t, root, "20250102_010101", m1)
	if !m2.Members.FullRead || m2.Members.ReusedMembers != 0 {
		t.Errorf("reused from another layout: %+v", m2.Members)
	}
}

// untar extracts the archive at path with the system's tar -xzf, as an
// operator would by hand, and returns the directory.
func untar(t *testing.T, path string) string {
	t.Helper()
	out := t.TempDir()
	if b, err := exec.Command("tar", "-xzf", path, "-C", out).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v: %s", err, b)
	}
	return out
}

// The read-back of a backup that copied members (VerifyWritten) checks each
// copied member against its SHA-256 and inflates the rest: it reports what
// a full verification does, and a flipped byte anywhere, in a copied member
// or a new one, fails it.
func TestReadBackChecksCopiedMembersByTheirHash(t *testing.T) {
	root := t.TempDir()
	smallTree(t, root, 1500)
	_, m1 := backup(t, root, "20250101_010101", nil)
	// One changed file: one group is compressed afresh, the rest copied.
	os.WriteFile(filepath.Join(root, "storage/d03/f-00010.json"), []byte("changed\n"), 0o644)
	path, m2 := backup(t, root, "20250102_010101", m1)
	if m2.Members.ReusedMembers == 0 || m2.Members.ReusedMembers == len(m2.Members.List) {
		t.Fatalf("want some members copied and some not: %d of %d", m2.Members.ReusedMembers, len(m2.Members.List))
	}
	for _, x := range m2.Members.List {
		if x.Copied != (x.CRC32C != "") {
			t.Fatalf("member at %d (copied %v) has crc32c %q: a copied member needs one, a fresh one is inflated instead", x.Offset, x.Copied, x.CRC32C)
		}
	}
	// Copied members are compared with their CRC-32C, or with their
	// SHA-256 where the table has none.
	noCRC := *m2
	noCRCMembers := *m2.Members
	noCRCMembers.List = append([]manifest.Member(nil), m2.Members.List...)
	for i := range noCRCMembers.List {
		noCRCMembers.List[i].CRC32C = ""
	}
	noCRC.Members = &noCRCMembers
	table := m2
	readBack := func() (*archive.Report, error) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return archive.VerifyWritten(context.Background(), f, table, nil)
	}
	full, err := verifyFile(t, path, m2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readBack()
	if err != nil {
		t.Fatalf("read-back of an intact archive: %v", err)
	}
	if *got != *full {
		t.Errorf("read-back reports %+v, a full verification %+v", *got, *full)
	}

	var copiedAt, freshAt int64 = -1, -1
	for _, x := range m2.Members.List {
		switch {
		case x.Copied && copiedAt < 0 && x.Offset > 0:
			copiedAt = x.Offset + x.Length/2
		case !x.Copied && freshAt < 0 && x.Count > 0:
			freshAt = x.Offset + x.Length/2
		}
	}
	for _, tc := range []struct {
		name  string
		table *manifest.Manifest
		at    int64
		want  string
	}{
		{"copied member", m2, copiedAt, "crc32c"},
		{"copied member, no crc32c", &noCRC, copiedAt, "sha256"},
		{"new member", m2, freshAt, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table = tc.table
			if _, err := readBack(); err != nil {
				t.Fatalf("intact: %v", err)
			}
			flip(t, path, tc.at)
			defer flip(t, path, tc.at)
			_, err := readBack()
			if !archive.IsIntegrity(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("flipped byte at %d: %v, want an integrity error saying %q", tc.at, err, tc.want)
			}
		})
	}
	t.Run("dump marked copied", func(t *testing.T) {
		m := *m2
		ms := *m2.Members
		ms.List = append([]manifest.Member(nil), m2.Members.List...)
		last := &ms.List[len(ms.List)-2] // the dump's only piece
		last.Copied = true
		m.Members = &ms
		f, _ := os.Open(path)
		defer f.Close()
		if _, err := archive.VerifyWritten(context.Background(), f, &m, nil); !archive.IsIntegrity(err) || !strings.Contains(err.Error(), "dump") {
			t.Fatalf("a table copying the dump: %v", err)
		}
	})
}

// flip inverts the low bit of the byte at off in the file at path.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
