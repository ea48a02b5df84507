package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// A restore whose time-based id an earlier restore already used (one that
// ended in the same second, or before the clock was set back) takes the
// next free id: it restores its backup in full, and the earlier restore's
// pre-restore copies, kept for its undo window, are left as they were.
// Without this the restore found the earlier database copy, took its
// database step for done, and reported a restore it had not made.
func TestRestoreIDAnEarlierRestoreUsedIsNotReused(t *testing.T) {
	t.Parallel() // its own root, server, ports and database
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 100)
	s := newSystem(t, "DATABASE_URL="+dbURL, "VULCAN_UNDO_WINDOW=1h")
	makeStorage(t, s.root, 1)
	s.start()
	storage := filepath.Join(s.root, "storage")
	b := s.backup()
	backupTree, backupDB := treeDigest(t, storage), testutil.Fingerprint(t, dbURL)
	os.WriteFile(filepath.Join(storage, "logs/live.log"), []byte("written after the backup"), 0o644)
	testutil.Psql(t, dbURL, "-c", "INSERT INTO accounts (name) VALUES ('after the backup')")

	// What an earlier restore with the id of the next second kept: its
	// pre-restore copies of the storage and of the database.
	start := time.Now().Truncate(time.Second).Add(time.Second)
	taken := workflows.RestoreIDFor(start)
	kept := filepath.Join(s.root, "storage.pre-restore-"+taken)
	os.MkdirAll(filepath.Join(kept, "logs"), 0o755)
	os.WriteFile(filepath.Join(kept, "logs/kept.log"), []byte("an earlier restore's copy"), 0o644)
	keptTree := treeDigest(t, kept)
	db := strings.TrimSpace(testutil.Psql(t, dbURL, "-tAc", "SELECT current_database()"))
	keptDB := db + "_pre_restore_" + taken
	testutil.Psql(t, dbURL, "-c", `CREATE DATABASE "`+keptDB+`"`)
	t.Cleanup(func() { testutil.Psql(t, dbURL, "-c", `DROP DATABASE IF EXISTS "`+keptDB+`"`) })

	time.Sleep(time.Until(start.Add(100 * time.Millisecond)))
	id := s.restoreID(b.Result.Archive)
	if id == taken {
		t.Fatalf("the restore took the id %s an earlier restore's copies are named for", id)
	}
	diffDigests(t, "storage after the restore", backupTree, treeDigest(t, storage))
	diffDigests(t, "database after the restore", backupDB, testutil.Fingerprint(t, dbURL))
	diffDigests(t, "the earlier restore's storage copy", keptTree, treeDigest(t, kept))
	if got := testutil.Psql(t, dbURL, "-tAc", "SELECT count(*) FROM pg_database WHERE datname = '"+keptDB+"'"); strings.TrimSpace(got) != "1" {
		t.Fatalf("the earlier restore's database copy %s is gone", keptDB)
	}
	if _, err := os.Stat(filepath.Join(s.root, "storage.pre-restore-"+id, "logs/live.log")); err != nil {
		t.Fatalf("the restore did not keep the live tree as its own pre-restore copy: %v", err)
	}
}
