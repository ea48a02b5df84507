package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"

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
	broken := s.unhealthyWhile("storage/BROKEN")
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

// A rollback that cannot stop the application is not announced as a
// rollback: the starter exits 6 with ROLLBACK INCOMPLETE, the lock stays so
// the next backup is refused, and once the cause is gone `starter retry`
// finishes the rollback: the files and rows are as before the restore, the
// application runs, the lock is free.
func TestIncompleteRollbackWaitsForTheOperator(t *testing.T) {
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 300)
	s := newSystem(t, "DATABASE_URL="+dbURL, "VULCAN_HEALTH_TIMEOUT=1s")
	s.env = append(s.env, execServices(s.root)...)
	broken := filepath.Join(s.root, "storage", "BROKEN")
	stopFails := filepath.Join(s.root, "stop.fails")
	log := filepath.Join(s.root, "services.log")
	for i, e := range s.env {
		switch {
		case strings.HasPrefix(e, "VULCAN_EXEC_HEALTH="):
			s.env[i] = e + " && test ! -f " + broken
		case strings.HasPrefix(e, "VULCAN_EXEC_STOP="):
			// Once the application has been started again (step 6), stopping
			// it fails while stop.fails exists.
			s.env[i] = "VULCAN_EXEC_STOP=if grep -q start " + log + " 2>/dev/null && test -f " + stopFails +
				"; then echo 'cannot stop: permission denied' >&2; exit 1; fi; " + strings.TrimPrefix(e, "VULCAN_EXEC_STOP=")
		}
	}
	makeStorage(t, s.root, 1)
	os.WriteFile(broken, []byte("this data breaks the app"), 0o644)
	os.WriteFile(filepath.Join(s.root, "app.running"), nil, 0o644)
	s.start()
	b := s.backup()
	os.Remove(broken)
	os.WriteFile(filepath.Join(s.root, "storage/logs/new-after-backup.log"), []byte("keep me"), 0o644)
	testutil.Psql(t, dbURL, "-c", "INSERT INTO accounts (name) VALUES ('after backup')")
	wantTree := treeDigest(t, filepath.Join(s.root, "storage"))
	wantDB := testutil.Fingerprint(t, dbURL)
	os.WriteFile(stopFails, nil, 0o644)

	_, errOut, code := s.starter("restore", b.Result.Archive, "--yes")
	if code != 6 || !strings.Contains(errOut, "ROLLBACK INCOMPLETE") || !strings.Contains(errOut, "stop the services for the rollback") {
		t.Fatalf("restore: exit %d, want 6 and ROLLBACK INCOMPLETE; stderr:\n%s", code, errOut)
	}
	if strings.Contains(errOut, "wrapError") || strings.Contains(errOut, "retryable:") {
		t.Errorf("the message carries the error chain:\n%s", errOut)
	}
	wf := workflowIDIn(t, errOut)
	// Nothing was renamed under the running application: it still runs on
	// the restored data, and the lock refuses a backup of that state.
	if _, err := os.Stat(broken); err != nil {
		t.Errorf("the restored tree was moved although the application could not be stopped")
	}
	_, errOut, code = s.starter("backup")
	if code != 4 || !strings.Contains(errOut, "did not complete") {
		t.Fatalf("backup over an incomplete rollback: exit %d\n%s", code, errOut)
	}

	os.Remove(stopFails)
	_, errOut, code = s.starter("retry", wf)
	if code != 1 || !strings.Contains(errOut, "rolled back") {
		t.Fatalf("retry: exit %d, want 1 (rolled back)\n%s", code, errOut)
	}
	diffDigests(t, "storage after the retried rollback", wantTree, treeDigest(t, filepath.Join(s.root, "storage")))
	diffDigests(t, "database after the retried rollback", wantDB, testutil.Fingerprint(t, dbURL))
	if _, err := os.Stat(filepath.Join(s.root, "app.running")); err != nil {
		t.Error("the application is not running after the rollback")
	}
	assertNoTempDatabases(t, dbURL)
	s.backup() // the lock is free again
}

// workflowIDIn finds a restore's or backup's workflow id in the starter's
// output.
func workflowIDIn(t *testing.T, out string) string {
	t.Helper()
	for _, f := range strings.Fields(out) {
		f = strings.Trim(f, "`.,;:()")
		if strings.HasPrefix(f, "vulcan-restore-") || strings.HasPrefix(f, "vulcan-backup-") {
			return f
		}
	}
	t.Fatalf("no workflow id in:\n%s", out)
	return ""
}

// A verified restore keeps the pre-restore copies (the files and the
// database as they were when the services stopped) for VULCAN_UNDO_WINDOW:
// the clean-up workflow waits, and has already given the restored database
// its statistics.
func TestRestoreKeepsThePreRestoreCopiesForTheUndoWindow(t *testing.T) {
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 100)
	s := newSystem(t, "DATABASE_URL="+dbURL)
	s.setEnv("VULCAN_UNDO_WINDOW", "1h")
	makeStorage(t, s.root, 1)
	s.start()
	b := s.backup()
	os.WriteFile(filepath.Join(s.root, "storage/logs/after.log"), []byte("written after the backup"), 0o644)
	out := s.mustStarter("restore", b.Result.Archive, "--yes", "--json")
	var res struct {
		Result struct {
			RestoreID string `json:"restore_id"`
			Cleanup   string `json:"cleanup_workflow_id"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Result.RestoreID == "" {
		t.Fatalf("restore --json: %v\n%s", err, out)
	}
	kept := filepath.Join(s.root, "storage.pre-restore-"+res.Result.RestoreID)
	if data, err := os.ReadFile(filepath.Join(kept, "logs/after.log")); err != nil || string(data) != "written after the backup" {
		t.Fatalf("the pre-restore copy: %q %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(s.root, "storage/logs/after.log")); !os.IsNotExist(err) {
		t.Fatal("the restored tree holds a file written after the backup")
	}
	name := testutil.Psql(t, dbURL, "-tAc", "SELECT datname FROM pg_database WHERE datname LIKE '%_pre_restore_"+res.Result.RestoreID+"'")
	if strings.TrimSpace(name) == "" {
		t.Fatal("the pre-restore database is gone")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := s.temporalClient(t).DescribeWorkflowExecution(ctx, res.Result.Cleanup, "")
	if err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("clean-up workflow %s: %v %v", res.Result.Cleanup, d.GetWorkflowExecutionInfo().GetStatus(), err)
	}
	waitFor(t, time.Minute, "the restored database's statistics", func() bool {
		n := testutil.Psql(t, dbURL, "-tAc", "SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NULL")
		return strings.TrimSpace(n) == "0"
	})
}
