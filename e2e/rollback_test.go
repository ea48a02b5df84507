package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

// A restore that fails after both swaps is rolled back for real: here the
// restored data makes the application unhealthy (its health check fails while
// storage/BROKEN exists), so step 6 fails. Afterwards the files and rows are
// exactly as before the restore, the application runs, nothing is left over.
func TestFailedRestoreIsRolledBack(t *testing.T) {
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 500)
	s := newSystem(t, "DATABASE_URL="+dbURL, "VULCAN_HEALTH_TIMEOUT=1s")
	s.env = append(s.env, execServices(s.root)...)
	broken := filepath.Join(s.root, "storage", "BROKEN")
	for i, e := range s.env {
		if strings.HasPrefix(e, "VULCAN_EXEC_HEALTH=") {
			s.env[i] = e + " && test ! -f " + broken
		}
	}
	makeStorage(t, s.root, 2)
	os.WriteFile(broken, []byte("this data breaks the app"), 0o644)
	os.WriteFile(filepath.Join(s.root, "app.running"), nil, 0o644)
	s.start()
	b := s.backup()

	// Change data after the backup: this is what the rollback must keep.
	os.Remove(broken)
	os.RemoveAll(filepath.Join(s.root, "storage/recordings"))
	os.WriteFile(filepath.Join(s.root, "storage/logs/new-after-backup.log"), []byte("keep me"), 0o644)
	testutil.Psql(t, dbURL, "-c", "DELETE FROM validation_attachments; INSERT INTO accounts (name) VALUES ('after backup')")
	wantTree := treeDigest(t, filepath.Join(s.root, "storage"))
	wantDB := testutil.Fingerprint(t, dbURL)

	_, errOut, code := s.starter("restore", b.Result.Archive, "--yes")
	if code != 1 || !strings.Contains(errOut, "rolled back") || !strings.Contains(errOut, "step 6 (start services)") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	diffDigests(t, "storage after rollback", wantTree, treeDigest(t, filepath.Join(s.root, "storage")))
	diffDigests(t, "database after rollback", wantDB, testutil.Fingerprint(t, dbURL))
	if _, err := os.Stat(filepath.Join(s.root, "app.running")); err != nil {
		t.Error("the application is not running after the rollback")
	}
	svc, _ := os.ReadFile(filepath.Join(s.root, "services.log"))
	if lines := strings.Fields(string(svc)); len(lines) == 0 || lines[len(lines)-1] != "start" {
		t.Errorf("services log %q: want it to end with a start", svc)
	}
	// Pre-restore copies are what the rollback put back; none is left, and
	// no staging directory either. The restored database was dropped.
	if l := leftovers(t, s.root); len(l) > 0 {
		t.Errorf("leftovers after rollback: %v", l)
	}
	assertNoTempDatabases(t, dbURL)
	// The lock is free again.
	s.backup()
}
