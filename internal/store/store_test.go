package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

func touch(t *testing.T, p string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o700)
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCleanDebris(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	const done, crashedMid, crashedCommit = "20250101_000000", "20250102_000000", "20250103_000000"
	// A complete backup: untouched.
	touch(t, d.ArchivePath(done))
	touch(t, d.ManifestPath(done))
	touch(t, d.DumpPath(done))
	// Crashed while writing: temporary files only.
	touch(t, d.TempArchivePath(crashedMid))
	touch(t, d.TempDumpPath(crashedMid))
	touch(t, d.TempDumpPath(crashedMid)+".json.tmp")
	// Crashed while committing: archive renamed, manifest not yet written.
	touch(t, d.ArchivePath(crashedCommit))
	touch(t, d.DumpPath(crashedCommit))
	touch(t, d.PendingManifestPath(crashedCommit))
	touch(t, filepath.Join(d.Path, "."+filepath.Base(d.PendingManifestPath(crashedCommit))+".tmp"))

	removed, err := d.CleanDebris()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.WalkDir(d.Path, func(p string, e os.DirEntry, err error) error {
		if !e.IsDir() {
			left = append(left, strings.TrimPrefix(p, d.Path+"/"))
		}
		return nil
	})
	want := []string{"database/vulcan_db_" + done + ".sql", "vulcan_backup_" + done + ".json", "vulcan_backup_" + done + ".tar.gz"}
	if strings.Join(left, ",") != strings.Join(want, ",") {
		t.Fatalf("left %v (removed %v), want %v", left, removed, want)
	}
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	d := Dir{Path: filepath.Join(root, "backups")}
	id := "20250101_000000"
	touch(t, d.ArchivePath(id))
	touch(t, d.ManifestPath(id))
	for _, arg := range []string{id, "backups/vulcan_backup_" + id + ".tar.gz", "vulcan_backup_" + id + ".tar.gz", d.ArchivePath(id), d.ManifestPath(id)} {
		a, m, err := d.Resolve(root, arg)
		if err != nil || a != d.ArchivePath(id) || m != d.ManifestPath(id) {
			t.Errorf("Resolve(%q) = %s %s %v", arg, a, m, err)
		}
	}
	if _, _, err := d.Resolve(root, "backups/nope.tar.gz"); err == nil || !strings.Contains(err.Error(), "nope.tar.gz") {
		t.Errorf("missing archive: %v", err)
	}
	os.Remove(d.ManifestPath(id))
	if _, _, err := d.Resolve(root, id); err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Errorf("missing manifest: %v", err)
	}
}

// A restore uses only archives in the backup directory: one a local user
// planted elsewhere (with its own matching manifest), or a link from the
// backup directory to it, is refused.
func TestResolveForRestoreStaysInTheBackupDirectory(t *testing.T) {
	root := t.TempDir()
	d := Dir{Path: filepath.Join(root, "backups")}
	id, planted := "20250101_000000", "20250102_000000"
	touch(t, d.ArchivePath(id))
	touch(t, d.ManifestPath(id))
	elsewhere := Dir{Path: filepath.Join(t.TempDir(), "tmp")}
	touch(t, elsewhere.ArchivePath(planted))
	touch(t, elsewhere.ManifestPath(planted))
	if _, _, err := d.ResolveForRestore(root, id); err != nil {
		t.Fatalf("a backup in the directory: %v", err)
	}
	if _, _, err := d.ResolveForRestore(root, elsewhere.ArchivePath(planted)); !errors.Is(err, ErrOutside) {
		t.Fatalf("an archive in /tmp: %v", err)
	}
	os.Symlink(elsewhere.ArchivePath(planted), d.ArchivePath(planted))
	os.Symlink(elsewhere.ManifestPath(planted), d.ManifestPath(planted))
	if _, _, err := d.ResolveForRestore(root, planted); !errors.Is(err, ErrOutside) {
		t.Fatalf("links to an archive in /tmp: %v", err)
	}
}

func FuzzResolveForRestore(f *testing.F) {
	root := f.TempDir()
	d := Dir{Path: filepath.Join(root, "backups")}
	id := "20250101_000000"
	os.MkdirAll(d.Path, 0o755)
	os.WriteFile(d.ArchivePath(id), nil, 0o644)
	os.WriteFile(d.ManifestPath(id), nil, 0o644)
	for _, s := range []string{id, "/etc/passwd", "../backups/vulcan_backup_" + id + ".tar.gz", "backups/../../x", "vulcan_backup_" + id + ".json"} {
		f.Add(s)
	}
	want, _ := filepath.EvalSymlinks(d.Path)
	f.Fuzz(func(t *testing.T, arg string) {
		a, m, err := d.ResolveForRestore(root, arg)
		if err != nil {
			return
		}
		for _, p := range []string{a, m} {
			if dir, _ := filepath.EvalSymlinks(filepath.Dir(p)); dir != want {
				t.Fatalf("%q resolved to %s, outside %s", arg, p, d.Path)
			}
		}
	})
}

// What List keeps for every backup it has seen is a summary, not the decoded
// manifest (tens of thousands of entries): a long-running worker would keep
// one more manifest every night.
func TestListKeepsNoManifest(t *testing.T) {
	manifestType := reflect.TypeOf(&manifest.Manifest{})
	info := reflect.TypeOf(Info{})
	for i := 0; i < info.NumField(); i++ {
		if f := info.Field(i); f.Type == manifestType || f.Type == manifestType.Elem() {
			t.Errorf("Info.%s holds a whole manifest", f.Name)
		}
	}
}

// oneDirManifest is the manifest of backup id, created at the time its id
// says, holding one directory.
func oneDirManifest(id string) *manifest.Manifest {
	created, _ := time.Parse("20060102_150405", id)
	return &manifest.Manifest{
		FormatVersion: manifest.FormatVersion, ID: id, Kind: manifest.Kind("manual"), CreatedAt: created,
		Paths: []string{"storage"}, Archive: manifest.FileRef{File: manifest.ArchiveName(id), SHA256: strings.Repeat("a", 64), Size: 10},
		Files: []manifest.Entry{{Path: "storage", Type: manifest.TypeDir, Mode: 0o755}},
	}
}

// List keeps what it read from each manifest, but a manifest written again
// (atomically, as every manifest is) is read again.
func TestListSeesARewrittenManifest(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	const id = "20250101_000000"
	m := oneDirManifest(id)
	if err := manifest.Write(d.ManifestPath(id), m); err != nil {
		t.Fatal(err)
	}
	infos, problems, err := d.List()
	if err != nil || len(problems) != 0 || len(infos) != 1 || infos[0].Verified {
		t.Fatalf("first list: %+v %+v %v", infos, problems, err)
	}
	m.VerifiedAt = time.Date(2025, 1, 1, 0, 1, 0, 0, time.UTC)
	if err := manifest.Write(d.ManifestPath(id), m); err != nil {
		t.Fatal(err)
	}
	if infos, _, _ = d.List(); len(infos) != 1 || !infos[0].Verified {
		t.Fatalf("after the rewrite: %+v", infos)
	}
}

// A manifest remembered as it was written is listed without being read: here
// its bytes are overwritten in place, same size and time, with ones that do
// not decode.
func TestListUsesARememberedManifest(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	const id = "20250102_000000"
	m := oneDirManifest(id)
	m.VerifiedAt = m.CreatedAt.Add(time.Minute)
	p := d.ManifestPath(id)
	if err := manifest.Write(p, m); err != nil {
		t.Fatal(err)
	}
	d.Remember(m)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte(strings.Repeat("#", int(st.Size()))))
	f.Close()
	os.Chtimes(p, st.ModTime(), st.ModTime())
	infos, problems, err := d.List()
	if err != nil || len(problems) != 0 || len(infos) != 1 || infos[0].ID != id || !infos[0].Verified || infos[0].ManifestPath != p {
		t.Fatalf("list after Remember: %+v %+v %v; want the remembered backup", infos, problems, err)
	}
}
