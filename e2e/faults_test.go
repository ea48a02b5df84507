package e2e

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

// tmpfs mounts a small tmpfs at dir for the test (root only).
func tmpfs(t *testing.T, dir string, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.Need(t, "mounting a tmpfs needs root")
	}
	os.MkdirAll(dir, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		testutil.Need(t, fmt.Sprintf("cannot mount a tmpfs: %v %s", err, out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

func randomFile(t *testing.T, p string, n int) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitForOneBackup waits until the lock is free and one backup exists.
func waitForOneBackup(t *testing.T, s *system) {
	t.Helper()
	waitFor(t, 4*time.Minute, "the backup to complete", func() bool {
		_, err := os.Stat(filepath.Join(s.root, "backups", ".vulcan.lock"))
		return os.IsNotExist(err) && backupCount(t, s) == 1
	})
}

func backupCount(t *testing.T, s *system) int {
	t.Helper()
	var list struct {
		Backups []json.RawMessage `json:"backups"`
	}
	json.Unmarshal([]byte(s.mustStarter("list", "--json")), &list)
	return len(list.Backups)
}

// The backup directory's file system is full: the backup fails with a clear
// message, leaves no partial file, and the older backup is untouched.
func TestBackupDiskFull(t *testing.T) {
	s := newSystem(t)
	tmpfs(t, filepath.Join(s.root, "backups"), "6m")
	randomFile(t, filepath.Join(s.root, "storage/logs/small.log"), 100<<10)
	s.start()
	first := s.backup()
	before, _ := os.ReadFile(filepath.Join(s.root, first.Result.Archive))

	randomFile(t, filepath.Join(s.root, "storage/recordings/big.webm"), 10<<20)
	_, errOut, code := s.starter("backup")
	if code != 1 || !strings.Contains(errOut, "no space left") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	entries, _ := os.ReadDir(filepath.Join(s.root, "backups"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("partial file left: %s", e.Name())
		}
	}
	if n := backupCount(t, s); n != 1 {
		t.Fatalf("%d backups, want the first one only", n)
	}
	after, _ := os.ReadFile(filepath.Join(s.root, first.Result.Archive))
	if string(after) != string(before) {
		t.Fatal("the older backup changed")
	}
	s.mustStarter("verify", first.Result.ID)
}

// A restore checks the space for staging before it stops any service.
func TestRestoreNeedsStagingSpace(t *testing.T) {
	s := newSystem(t)
	tmpfs(t, s.root, "40m")
	s.env = append(s.env, execServices(s.root)...)
	randomFile(t, filepath.Join(s.root, "storage/recordings/rec.webm"), 8<<20)
	os.WriteFile(filepath.Join(s.root, "app.running"), nil, 0o644)
	s.start()
	b := s.backup()
	_, errOut, code := s.starter("restore", b.Result.ID, "--yes")
	if code != 1 || !strings.Contains(errOut, "free under") || !strings.Contains(errOut, "for staging") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if data, _ := os.ReadFile(filepath.Join(s.root, "services.log")); len(data) != 0 {
		t.Fatalf("services were touched: %q", data)
	}
	if n := backupCount(t, s); n != 1 {
		t.Fatalf("%d backups: the refused restore took an emergency backup", n)
	}
}

// The database is down when a restore starts: refused at validation after
// bounded retries, nothing changed, no emergency backup taken.
func TestRestoreWithDatabaseDown(t *testing.T) {
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 100)
	s := newSystem(t, "DATABASE_URL="+dbURL)
	makeStorage(t, s.root, 1)
	s.start()
	b := s.backup()
	want := treeDigest(t, filepath.Join(s.root, "storage"))
	s.stop()
	s.env = append(s.env, "DATABASE_URL=postgres://vulcan:pw@127.0.0.1:1/vulcan_db")
	s.start()
	_, errOut, code := s.starter("restore", b.Result.ID, "--yes")
	if code != 1 || !strings.Contains(errOut, "vulcan@127.0.0.1:1/vulcan_db") || !strings.Contains(errOut, "step 1 (validate)") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	diffDigests(t, "storage", want, treeDigest(t, filepath.Join(s.root, "storage")))
	if n := backupCount(t, s); n != 1 {
		t.Fatalf("%d backups: the refused restore took an emergency backup", n)
	}
}

// A damaged archive with a sound standalone dump and a database to restore
// into: step 1 finds the damage while it extracts the files (those before
// the damage are in the staging directory by then). The partial staged copy
// goes, no database is created, and the files, the database and the backups
// are as they were.
func TestDamagedArchiveWithDatabaseChangesNothing(t *testing.T) {
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 2000)
	s := newSystem(t, "DATABASE_URL="+dbURL)
	makeStorage(t, s.root, 4)
	s.start()
	b := s.backup()
	wantFiles := treeDigest(t, filepath.Join(s.root, "storage"))
	wantDB := testutil.Fingerprint(t, dbURL)
	// Near the end, where the archive holds the dump: the files before it
	// have been extracted when the damage is found.
	archive := filepath.Join(s.root, b.Result.Archive)
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-200] ^= 0x40
	os.WriteFile(archive, data, 0o600)

	_, errOut, code := s.starter("restore", b.Result.ID, "--yes")
	if code != 3 || !strings.Contains(errOut, "checksum mismatch") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	name := dbURL[strings.LastIndex(dbURL, "/")+1:]
	if i := strings.IndexByte(name, '?'); i >= 0 {
		name = name[:i]
	}
	left := testutil.Psql(t, dbURL, "-tAc", "SELECT count(*) FROM pg_database WHERE datname LIKE '"+name+"\\_%'")
	if strings.TrimSpace(left) != "0" {
		t.Fatalf("%s temporary databases of %s left", strings.TrimSpace(left), name)
	}
	if l := leftovers(t, s.root); len(l) > 0 {
		t.Fatalf("leftovers: %v", l)
	}
	diffDigests(t, "storage", wantFiles, treeDigest(t, filepath.Join(s.root, "storage")))
	diffDigests(t, "database", wantDB, testutil.Fingerprint(t, dbURL))
	if n := backupCount(t, s); n != 1 {
		t.Fatalf("%d backups: the refused restore took an emergency backup", n)
	}
}

// The worker (with its embedded server) is killed with SIGKILL in the middle
// of writing the archive and started again: the backup completes with
// exactly one verified archive and manifest and no temporary file anywhere.
func TestWorkerKilledMidBackup(t *testing.T) {
	s := newSystem(t)
	randomFile(t, filepath.Join(s.root, "storage/recordings/a.webm"), 200<<20)
	randomFile(t, filepath.Join(s.root, "storage/recordings/b.webm"), 200<<20)
	s.start()
	s.mustStarter("backup", "--detach")
	// Wait until the archive is being written, then kill.
	waitFor(t, time.Minute, "the archive to be written", func() bool {
		matches, _ := filepath.Glob(filepath.Join(s.root, "backups", ".vulcan_backup_*.tar.gz.tmp"))
		if len(matches) == 0 {
			return false
		}
		st, err := os.Stat(matches[0])
		return err == nil && st.Size() > 20<<20
	})
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.start()
	// The archive step is retried once its heartbeat times out (30 s).
	waitForOneBackup(t, s)
	var list struct {
		Backups []struct {
			ID       string `json:"id"`
			Verified bool   `json:"verified"`
		} `json:"backups"`
	}
	json.Unmarshal([]byte(s.mustStarter("list", "--json")), &list)
	if len(list.Backups) != 1 || !list.Backups[0].Verified {
		t.Fatalf("backups %+v", list)
	}
	s.mustStarter("verify", list.Backups[0].ID)
	for _, dir := range []string{"backups", "backups/database"} {
		entries, _ := os.ReadDir(filepath.Join(s.root, dir))
		var archives int
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".tmp") {
				t.Errorf("temporary file left: %s/%s", dir, e.Name())
			}
			if strings.HasSuffix(e.Name(), ".tar.gz") {
				archives++
			}
		}
		if dir == "backups" && archives != 1 {
			t.Errorf("%d archives, want 1", archives)
		}
	}
}
