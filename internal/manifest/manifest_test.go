package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func valid() *Manifest {
	h := strings.Repeat("a", 64)
	return &Manifest{
		FormatVersion: 1, ID: "20251223_020000", Kind: KindScheduled, CreatedAt: time.Now().UTC(), Paths: []string{"storage"},
		Archive: FileRef{File: "vulcan_backup_20251223_020000.tar.gz", SHA256: h, Size: 100},
		Files: []Entry{{Path: "storage", Type: TypeDir, Mode: 0o755}, {Path: "storage/a", Type: TypeFile, Size: 3, SHA256: h, Mode: 0o644},
			{Path: "storage/l", Type: TypeSymlink, Link: "a"}},
		Database:   &Database{File: "database/vulcan_db_20251223_020000.sql", ArchivePath: "database/vulcan_db_20251223_020000.sql", SHA256: h, Size: 7},
		TotalBytes: 10,
	}
}

func TestValidate(t *testing.T) {
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid manifest: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Manifest)
		want string
	}{
		{"version", func(m *Manifest) { m.FormatVersion = 9 }, "format_version"},
		{"id", func(m *Manifest) { m.ID = "2025" }, "id"},
		{"kind", func(m *Manifest) { m.Kind = "weekly" }, "kind"},
		{"archive name", func(m *Manifest) { m.Archive.File = "other.tar.gz" }, "does not match id"},
		{"hash", func(m *Manifest) { m.Archive.SHA256 = "xyz" }, "64 hex"},
		{"dot-dot", func(m *Manifest) { m.Files[1].Path = "storage/../x" }, "not clean"},
		{"absolute", func(m *Manifest) { m.Files[1].Path = "/etc/passwd" }, "absolute"},
		{"outside paths", func(m *Manifest) { m.Files[1].Path = "other/a" }, "outside"},
		{"duplicate", func(m *Manifest) { m.Files[2] = m.Files[1] }, "twice"},
		{"total", func(m *Manifest) { m.TotalBytes = 1 << 40 }, "total_bytes"},
		{"type", func(m *Manifest) { m.Files[1].Type = "device" }, "type"},
		{"db name", func(m *Manifest) { m.Database.File = "x.sql" }, "database file"},
	} {
		m := valid()
		tc.edit(m)
		err := m.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), ManifestName("20251223_020000"))
	if err := Write(p, valid()); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	m, err := Read(p)
	if err != nil || m.ID != "20251223_020000" || len(m.Files) != 3 {
		t.Fatalf("read back: %+v %v", m, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestReadRefusesGarbage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.json")
	os.WriteFile(p, []byte(`{"format_version": 1, "id": `), 0o600)
	if _, err := Read(p); !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("want not-exist, got %v", err)
	}
}

func TestNames(t *testing.T) {
	if id, ok := IDFromName("backups/vulcan_backup_20251223_020000.tar.gz"); !ok || id != "20251223_020000" {
		t.Fatal(id, ok)
	}
	if _, ok := IDFromName("vulcan_backup_2025.tar.gz"); ok {
		t.Fatal("bad name accepted")
	}
	if DumpName("20251223_020000") != "database/vulcan_db_20251223_020000.sql" {
		t.Fatal(DumpName("20251223_020000"))
	}
}

// An undo's description has no archive and no checksums, and is refused
// where a backup is expected.
func TestUndoKind(t *testing.T) {
	undo := func() *Manifest {
		m := valid()
		m.Kind, m.Archive = KindUndo, FileRef{}
		m.Files[1].SHA256 = ""
		m.Database = &Database{Tables: []TableCount{{Table: "t", Rows: 1}}}
		m.TotalBytes = 3
		return m
	}
	if err := undo().Validate(); err != nil {
		t.Fatalf("undo description: %v", err)
	}
	inPlace := undo()
	inPlace.Database.ArchivePath, inPlace.Database.SHA256, inPlace.Database.Size = UndoDumpName, strings.Repeat("b", 64), 5
	inPlace.TotalBytes = 8
	if err := inPlace.Validate(); err != nil {
		t.Fatalf("undo description with a dump: %v", err)
	}
	withArchive := undo()
	withArchive.Archive = valid().Archive
	if err := withArchive.Validate(); err == nil {
		t.Fatal("an undo with an archive must be refused")
	}
	unsummed := valid()
	unsummed.Files[1].SHA256 = ""
	if err := unsummed.Validate(); err == nil {
		t.Fatal("a backup file without a checksum must be refused")
	}
	p := filepath.Join(t.TempDir(), ManifestName("20251223_020000"))
	if err := Write(p, undo()); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBackup(p); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an undo's description read as a backup: %v", err)
	}
}
