package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// Bad input through the real binaries: each refused with a clear message and
// the right exit status, and nothing changed.
func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	s := newSystem(t)
	makeStorage(t, s.root, 2)
	s.start()
	b := s.backup()
	if b.Result.Database || !strings.Contains(b.Result.Note, "DATABASE_URL is not set") {
		t.Fatalf("a files-only backup must say so: %+v", b.Result)
	}
	m, err := manifest.Read(filepath.Join(s.root, b.Result.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	if m.Database != nil || !strings.Contains(m.DatabaseNote, "DATABASE_URL") {
		t.Fatalf("manifest database %+v note %q", m.Database, m.DatabaseNote)
	}
	archive := filepath.Join(s.root, b.Result.Archive)
	data, _ := os.ReadFile(archive)
	before := treeDigest(t, filepath.Join(s.root, "storage"))

	// put writes a copy of the archive under a new id with a manifest, in
	// the backup directory (a restore uses no other).
	put := func(id string, archiveData []byte, mf *manifest.Manifest) string {
		dir := filepath.Join(s.root, "backups")
		p := filepath.Join(dir, manifest.ArchiveName(id))
		os.WriteFile(p, archiveData, 0o600)
		if mf != nil {
			c := *mf
			c.ID = id
			c.Archive.File = manifest.ArchiveName(id)
			if err := manifest.Write(filepath.Join(dir, manifest.ManifestName(id)), &c); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0x40
	truncated := data[:len(data)/2]

	cases := []struct {
		name   string
		arg    string
		code   int
		reason string
	}{
		{"flipped byte", put("20200101_000001", flipped, m), 3, "checksum mismatch"},
		{"truncated", put("20200101_000002", truncated, m), 3, "truncated"},
		{"missing manifest", put("20200101_000003", data, nil), 2, "manifest"},
		{"path that does not exist", "backups/vulcan_backup_19990101_000000.tar.gz", 2, "vulcan_backup_19990101_000000.tar.gz"},
		{"unsafe entry", hostileArchive(t, filepath.Join(s.root, "backups")), 3, "escapes"},
	}
	garbage := put("20200101_000004", data, m)
	os.WriteFile(strings.TrimSuffix(garbage, ".tar.gz")+".json", []byte("{not json"), 0o600)
	cases = append(cases, struct {
		name   string
		arg    string
		code   int
		reason string
	}{"manifest that does not parse", garbage, 3, "invalid manifest"})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, cmd := range [][]string{{"verify", tc.arg}, {"restore", tc.arg, "--yes"}} {
				out, errOut, code := s.starter(cmd...)
				if code != tc.code || !strings.Contains(errOut, tc.reason) {
					t.Errorf("%s: exit %d (want %d), stderr %q (want %q), stdout %q", cmd[0], code, tc.code, errOut, tc.reason, out)
				}
				if n := strings.Count(errOut, "integrity check failed"); n > 1 {
					t.Errorf("%s: the message says %q %d times: %q", cmd[0], "integrity check failed", n, errOut)
				}
			}
			diffDigests(t, "storage after refused restore", before, treeDigest(t, filepath.Join(s.root, "storage")))
			if l := leftovers(t, s.root); len(l) > 0 {
				t.Errorf("leftovers: %v", l)
			}
		})
	}
	// A good copy of the backup outside the backup directory: verify reads
	// it, a restore refuses it.
	outside := filepath.Join(t.TempDir(), manifest.ArchiveName("20200101_000010"))
	os.WriteFile(outside, data, 0o600)
	c := *m
	c.ID, c.Archive.File = "20200101_000010", manifest.ArchiveName("20200101_000010")
	manifest.Write(strings.TrimSuffix(outside, ".tar.gz")+".json", &c)
	s.mustStarter("verify", outside)
	if _, errOut, code := s.starter("restore", outside, "--yes"); code != 2 || !strings.Contains(errOut, "not in the backup directory") {
		t.Errorf("restore from outside the backup directory: exit %d, stderr %q", code, errOut)
	}
	// Refused restores took no emergency backup.
	var list struct {
		Backups []struct {
			Kind string `json:"kind"`
		} `json:"backups"`
	}
	json.Unmarshal([]byte(s.mustStarter("list", "--json")), &list)
	for _, b := range list.Backups {
		if b.Kind == string(manifest.KindEmergency) {
			t.Fatalf("a refused restore took an emergency backup: %+v", list.Backups)
		}
	}
	// Without --yes and without a terminal, restore refuses.
	if _, errOut, code := s.starter("restore", b.Result.Archive); code != 2 || !strings.Contains(errOut, "not confirmed") {
		t.Fatalf("unconfirmed restore: exit %d %q", code, errOut)
	}
}

// hostileArchive writes an archive with a symlink escaping the root and a
// manifest that matches it byte for byte.
func hostileArchive(t *testing.T, dir string) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	mt := time.Unix(1700000000, 0).UTC()
	tw.WriteHeader(&tar.Header{Name: "storage/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt})
	tw.WriteHeader(&tar.Header{Name: "storage/evil", Typeflag: tar.TypeSymlink, Linkname: "../../../etc", ModTime: mt})
	tw.Close()
	gz.Close()
	sum := sha256.Sum256(buf.Bytes())
	id := "20200101_000009"
	m := &manifest.Manifest{FormatVersion: 1, ID: id, Kind: manifest.KindManual, CreatedAt: mt, Paths: []string{"storage"},
		Archive: manifest.FileRef{File: manifest.ArchiveName(id), SHA256: hex.EncodeToString(sum[:]), Size: int64(buf.Len())},
		Files: []manifest.Entry{{Path: "storage", Type: manifest.TypeDir, Mode: 0o755, ModTime: mt},
			{Path: "storage/evil", Type: manifest.TypeSymlink, Link: "../../../etc", ModTime: mt}}}
	os.WriteFile(filepath.Join(dir, manifest.ArchiveName(id)), buf.Bytes(), 0o600)
	if err := manifest.Write(filepath.Join(dir, manifest.ManifestName(id)), m); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, manifest.ArchiveName(id))
}

// A database that is down: the backup fails after bounded retries, names the
// database, and writes no manifest; a restore refuses at validation.
func TestDatabaseDown(t *testing.T) {
	s := newSystem(t, "DATABASE_URL=postgres://vulcan:pw-not-shown@127.0.0.1:1/vulcan_db")
	makeStorage(t, s.root, 1)
	s.start()
	start := time.Now()
	_, errOut, code := s.starter("backup")
	if code != 1 || !strings.Contains(errOut, "vulcan@127.0.0.1:1/vulcan_db") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(errOut, "pw-not-shown") || strings.Contains(s.logs.String(), "pw-not-shown") {
		t.Fatal("the password appears in the output or the worker log")
	}
	t.Logf("backup failed after %s", time.Since(start).Round(time.Second))
	entries, _ := os.ReadDir(filepath.Join(s.root, "backups"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") || strings.HasSuffix(e.Name(), ".tar.gz") {
			t.Errorf("backup file written despite the failure: %s", e.Name())
		}
	}
}
