package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

// restoreID runs a restore (or an undo) through the starter and returns
// its restore id.
func (s *system) restoreID(args ...string) string {
	s.t.Helper()
	out := s.mustStarter(append(append([]string{"restore"}, args...), "--yes", "--json")...)
	var res struct {
		Result struct {
			RestoreID string `json:"restore_id"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Result.RestoreID == "" {
		s.t.Fatalf("restore %v --json: %v\n%s", args, err, out)
	}
	return res.Result.RestoreID
}

// databaseNames lists the databases named after dbURL's with a restore
// suffix.
func databaseNames(t *testing.T, dbURL string) string {
	t.Helper()
	return strings.TrimSpace(testutil.Psql(t, dbURL, "-tAc", `SELECT string_agg(substr(datname, length(current_database()) + 2), ',' ORDER BY datname)
		FROM pg_database WHERE starts_with(datname, current_database() || '_')`))
}

// `starter restore --undo` puts back the storage and the database a verified
// restore replaced (the writes made after the backup included), keeps what
// it replaced so it can be undone in turn, and an undo that fails is rolled
// back like any restore, giving the restore its copies back. Both database
// modes: a role that may rename databases, and one that loads in place.
func TestUndoPutsBackWhatARestoreReplaced(t *testing.T) {
	t.Parallel() // its own root, server, ports and database
	for _, mode := range []string{"rename", "in-place"} {
		t.Run(mode, func(t *testing.T) {
			dbURL := testutil.NewDatabase(t)
			if mode == "in-place" {
				dbURL = testutil.NewNoCreateDatabase(t)
			}
			testutil.LoadVulcanDB(t, dbURL, 200)
			s := newSystem(t, "DATABASE_URL="+dbURL, "VULCAN_HEALTH_TIMEOUT=1s")
			broken := s.unhealthyWhile("storage/BROKEN")
			s.setEnv("VULCAN_UNDO_WINDOW", "1h")
			makeStorage(t, s.root, 1)
			os.WriteFile(filepath.Join(s.root, "app.running"), nil, 0o644)
			s.start()
			b := s.backup()
			storage := filepath.Join(s.root, "storage")

			// Written after the backup: what a restore replaces and its
			// undo must bring back. BROKEN makes the application unhealthy.
			os.WriteFile(filepath.Join(storage, "logs/after-backup.log"), []byte("keep me"), 0o644)
			os.RemoveAll(filepath.Join(storage, "recordings"))
			testutil.Psql(t, dbURL, "-c", "DELETE FROM validation_attachments; INSERT INTO accounts (name) VALUES ('after backup')")
			os.WriteFile(broken, []byte("breaks the app"), 0o644)
			restoreID := s.restoreID(b.Result.Archive)
			restoredTree, restoredDB := treeDigest(t, storage), testutil.Fingerprint(t, dbURL)

			// The undo swaps in the copy holding BROKEN: the application
			// does not become healthy, and the undo is rolled back.
			_, errOut, code := s.starter("restore", "--undo", restoreID, "--yes")
			if code != 1 || !strings.Contains(errOut, "rolled back") || !strings.Contains(errOut, "step 6 (start services)") {
				t.Fatalf("undo that cannot start the application: exit %d, stderr:\n%s", code, errOut)
			}
			diffDigests(t, "storage after the failed undo", restoredTree, treeDigest(t, storage))
			diffDigests(t, "database after the failed undo", restoredDB, testutil.Fingerprint(t, dbURL))
			kept := filepath.Join(s.root, "storage.pre-restore-"+restoreID)
			if data, err := os.ReadFile(filepath.Join(kept, "logs/after-backup.log")); err != nil || string(data) != "keep me" {
				t.Fatalf("the failed undo did not give the restore its copy back: %q %v", data, err)
			}

			// The operator removes the cause from the kept copy and undoes
			// again: everything written after the backup is back.
			if err := os.Remove(filepath.Join(kept, "BROKEN")); err != nil {
				t.Fatal(err)
			}
			wantTree := treeDigest(t, kept)
			undoID := s.restoreID("--undo", restoreID)
			diffDigests(t, "storage after the undo", wantTree, treeDigest(t, storage))
			if got := testutil.Psql(t, dbURL, "-tAc", "SELECT count(*) FROM accounts WHERE name = 'after backup'"); strings.TrimSpace(got) != "1" {
				t.Fatalf("the row written after the backup is not back: %q", got)
			}
			if got := testutil.Psql(t, dbURL, "-tAc", "SELECT count(*) FROM validation_attachments"); strings.TrimSpace(got) != "0" {
				t.Fatalf("the rows deleted after the backup are back: %q", got)
			}
			if _, err := os.Stat(kept); !os.IsNotExist(err) {
				t.Fatal("the undone restore's copy is still there")
			}
			if mode == "rename" {
				if got := databaseNames(t, dbURL); got != "pre_restore_"+undoID {
					t.Fatalf("databases beside the target: %q, want only the undo's kept copy", got)
				}
			}
			if _, err := os.Stat(filepath.Join(s.root, "app.running")); err != nil {
				t.Error("the application is not running after the undo")
			}

			// The undo is itself undone: the restored state is back.
			s.restoreID("--undo", undoID)
			diffDigests(t, "storage after undoing the undo", restoredTree, treeDigest(t, storage))
			diffDigests(t, "database after undoing the undo", restoredDB, testutil.Fingerprint(t, dbURL))

			// A restore can be undone once: its copies are gone.
			_, errOut, code = s.starter("restore", "--undo", restoreID, "--yes")
			if code == 0 || !strings.Contains(errOut, "no pre-restore copies to undo") {
				t.Fatalf("second undo of %s: exit %d, stderr:\n%s", restoreID, code, errOut)
			}
			s.backup() // the lock is free
		})
	}
}
