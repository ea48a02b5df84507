package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/faultpoint"
	"github.com/project-vulcan/vulcan-backup/internal/testutil"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// crashFixture is a system with data, a backup of it, and data changed since,
// so that "restored" and "as before" can be told apart.
type crashFixture struct {
	s                  *system
	dbURL              string
	backup             backupJSON
	restoredTree       map[string]string // the backup's files
	restoredDB         map[string]string // the backup's rows
	beforeTree         map[string]string // the files when the restore starts
	beforeDB           map[string]string // the rows when the restore starts
	restoreWorkflowID  string
	restoreWorkflowRun string
}

// newCrashFixture runs the server and the worker as separate processes (as in
// the compose stack), takes a backup and changes files and rows after it.
func newCrashFixture(t *testing.T, rows int) *crashFixture {
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, rows)
	s := newSystem(t, "DATABASE_URL="+dbURL)
	s.split, s.bin = true, faultWorkerBin
	s.env = append(s.env, execServices(s.root)...)
	makeStorage(t, s.root, 2)
	os.WriteFile(filepath.Join(s.root, "app.running"), nil, 0o644)
	s.start()
	f := &crashFixture{s: s, dbURL: dbURL, backup: s.backup()}
	f.restoredTree = treeDigest(t, filepath.Join(s.root, "storage"))
	f.restoredDB = testutil.Fingerprint(t, dbURL)

	os.WriteFile(filepath.Join(s.root, "storage/logs/after-backup.log"), []byte("written after the backup"), 0o644)
	os.RemoveAll(filepath.Join(s.root, "storage/chroma"))
	testutil.Psql(t, dbURL, "-c", "INSERT INTO accounts (name) VALUES ('after backup')")
	f.beforeTree = treeDigest(t, filepath.Join(s.root, "storage"))
	f.beforeDB = testutil.Fingerprint(t, dbURL)
	return f
}

// startRestore starts the restore detached and remembers its workflow.
func (f *crashFixture) startRestore(t *testing.T) {
	t.Helper()
	var started struct {
		WorkflowID string `json:"workflow_id"`
		RunID      string `json:"run_id"`
	}
	out := f.s.mustStarter("restore", f.backup.Result.Archive, "--yes", "--detach", "--json")
	if err := json.Unmarshal([]byte(out), &started); err != nil {
		t.Fatalf("restore --detach --json: %v\n%s", err, out)
	}
	f.restoreWorkflowID, f.restoreWorkflowRun = started.WorkflowID, started.RunID
}

// waitRestore waits for the restore workflow to end and returns its error.
func (f *crashFixture) waitRestore(t *testing.T) (*workflows.RestoreResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var res workflows.RestoreResult
	err := f.s.temporalClient(t).GetWorkflow(ctx, f.restoreWorkflowID, f.restoreWorkflowRun).Get(ctx, &res)
	return &res, err
}

// assertWhole checks that the files and rows are all the backup's (restored)
// or all as they were before the restore, never a mix; that the application
// runs; and that no staging, pre-restore copy, temporary database, temporary
// file or lock is left.
func (f *crashFixture) assertWhole(t *testing.T, restored bool) {
	t.Helper()
	wantTree, wantDB, what := f.beforeTree, f.beforeDB, "as before"
	if restored {
		wantTree, wantDB, what = f.restoredTree, f.restoredDB, "restored"
	}
	diffDigests(t, "storage "+what, wantTree, treeDigest(t, filepath.Join(f.s.root, "storage")))
	diffDigests(t, "database "+what, wantDB, testutil.Fingerprint(t, f.dbURL))
	if _, err := os.Stat(filepath.Join(f.s.root, "app.running")); err != nil {
		t.Error("the application is not running")
	}
	if l := leftovers(t, f.s.root); len(l) > 0 {
		t.Errorf("leftovers: %v", l)
	}
	assertNoTempDatabases(t, f.dbURL)
	entries, _ := os.ReadDir(filepath.Join(f.s.root, "backups"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") || e.Name() == ".vulcan.lock" {
			t.Errorf("left in backups/: %s", e.Name())
		}
	}
}

// The worker is killed with SIGKILL at each point of a restore in turn, with
// the Temporal server staying up as in production, and a new worker is
// started. Each run ends fully restored: every file and row is the backup's,
// the application runs, nothing is left over. The interrupted step is retried
// once its heartbeat times out (workflows.HeartbeatTimeout); the points run in
// parallel so the suite waits for that about once.
func TestWorkerKilledAtEachRestoreStep(t *testing.T) {
	points := []string{
		faultpoint.Validate, faultpoint.EmergencyArchive, faultpoint.ServicesStopped, faultpoint.Extracting,
		faultpoint.StorageSwapped, faultpoint.DatabaseLoading, faultpoint.DatabaseHalfSwap, faultpoint.BeforeVerify,
	}
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			rows := 300
			if point == faultpoint.DatabaseLoading {
				// The load reports progress every MiB: a dump of a few MiB, so
				// the worker dies with part of it loaded.
				rows = 15000
			}
			f := newCrashFixture(t, rows)
			s := f.s
			s.stop()
			s.setEnv(faultpoint.Env, point)
			s.start()
			f.startRestore(t)
			killAtAndRestart(t, s, point)
			res, err := f.waitRestore(t)
			if err != nil {
				t.Fatalf("restore after the worker was killed at %s: %v", point, err)
			}
			if res.Verify == nil {
				t.Fatalf("restore result without a verification: %+v", res)
			}
			f.assertWhole(t, true)
			if res.EmergencyBackup == nil || res.EmergencyBackup.ID == "" {
				t.Error("no emergency backup recorded")
			}
			if n := backupCount(t, s); n != 2 {
				t.Errorf("%d backups, want the backup and one emergency backup", n)
			}
		})
	}
}

// The Temporal server is killed with SIGKILL and started again while a
// restore runs (in step 3, its stop command still running), under a worker
// that keeps running in its own process: the restore carries on and ends
// fully restored.
func TestServerRestartedDuringRestore(t *testing.T) {
	f := newCrashFixture(t, 300)
	s := f.s
	stopping := filepath.Join(s.root, "stopping")
	s.setEnv("VULCAN_EXEC_STOP", "touch "+stopping+" && sleep 4 && "+execStop(s))
	s.stop()
	s.start()
	f.startRestore(t)
	waitFor(t, 2*time.Minute, "step 3 to begin", func() bool {
		_, err := os.Stat(stopping)
		return err == nil
	})
	s.server.kill()
	if !strings.Contains(s.logs.String(), "worker running") || s.cmd.ProcessState != nil {
		t.Fatal("the worker should still run")
	}
	time.Sleep(time.Second)
	s.startServer()
	res, err := f.waitRestore(t)
	if err != nil {
		t.Fatalf("restore across a server restart: %v", err)
	}
	if res.Verify == nil {
		t.Fatalf("restore result without a verification: %+v", res)
	}
	f.assertWhole(t, true)
	if s.cmd.ProcessState != nil {
		t.Error("the worker exited while the server was away")
	}
}

// killAtAndRestart waits until the worker (a faultinject build) halts at
// point, kills it with SIGKILL, and starts it again without the fault point.
func killAtAndRestart(t *testing.T, s *system, point string) {
	t.Helper()
	waitFor(t, 3*time.Minute, "fault point "+point, func() bool {
		return strings.Contains(s.logs.String(), "FAULTPOINT "+point+" reached")
	})
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.setEnv(faultpoint.Env, "")
	s.start()
}

// restartWithFault kills the worker and starts it again with the fault
// point selected, for what comes next to stop there.
func restartWithFault(s *system, point string) {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.setEnv(faultpoint.Env, point)
	s.start()
}

// execStop is the exec controller's stop command of execServices.
func execStop(s *system) string {
	for _, e := range execServices(s.root) {
		if cmd, ok := strings.CutPrefix(e, "VULCAN_EXEC_STOP="); ok {
			return cmd
		}
	}
	s.t.Fatal("execServices has no stop command")
	return ""
}

// The worker is killed in the middle of a backup's commit, its dump renamed
// into place and its archive and manifest not yet: the retried commit
// completes the backup, which then verifies, and nothing is left over.
func TestWorkerKilledMidCommit(t *testing.T) {
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 200)
	s := newSystem(t, "DATABASE_URL="+dbURL)
	s.bin = faultWorkerBin
	makeStorage(t, s.root, 1)
	s.setEnv(faultpoint.Env, faultpoint.BackupHalfCommitted)
	s.start()
	s.mustStarter("backup", "--detach")
	killAtAndRestart(t, s, faultpoint.BackupHalfCommitted)
	// The commit is retried once its attempt times out (a minute).
	waitForOneBackup(t, s)
	var list struct {
		Backups []struct {
			ID string `json:"id"`
		} `json:"backups"`
	}
	json.Unmarshal([]byte(s.mustStarter("list", "--json")), &list)
	if len(list.Backups) != 1 {
		t.Fatalf("backups %+v", list)
	}
	s.mustStarter("verify", list.Backups[0].ID)
	if _, err := os.Stat(filepath.Join(s.root, "backups", "database", "vulcan_db_"+list.Backups[0].ID+".sql")); err != nil {
		t.Errorf("the dump of the backup: %v", err)
	}
	for _, dir := range []string{"backups", "backups/database"} {
		entries, _ := os.ReadDir(filepath.Join(s.root, dir))
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".tmp") {
				t.Errorf("temporary file left: %s/%s", dir, e.Name())
			}
		}
	}
}

// The worker is killed inside a rollback, after its database undo and after
// its storage undo: the restarted worker finishes the rollback, and the files
// and rows are as before the restore, the application runs, nothing is left.
func TestWorkerKilledDuringTheRollback(t *testing.T) {
	for _, point := range []string{faultpoint.RolledBackDatabase, faultpoint.RolledBackStorage} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			f := newCrashFixture(t, 300)
			s := f.s
			s.stop()
			// The application does not start on the restored data (which
			// has storage/chroma, removed since the backup), so step 6
			// fails and the restore rolls back.
			s.setEnv("VULCAN_EXEC_START", "test ! -d "+filepath.Join(s.root, "storage/chroma")+" && "+execStart(s))
			s.setEnv("VULCAN_HEALTH_TIMEOUT", "1s")
			s.setEnv(faultpoint.Env, point)
			s.start()
			f.startRestore(t)
			killAtAndRestart(t, s, point)
			if _, err := f.waitRestore(t); err == nil {
				t.Fatal("the restore succeeded")
			}
			f.assertWhole(t, false)
		})
	}
}

// execStart is the exec controller's start command of execServices.
func execStart(s *system) string {
	for _, e := range execServices(s.root) {
		if cmd, ok := strings.CutPrefix(e, "VULCAN_EXEC_START="); ok {
			return cmd
		}
	}
	s.t.Fatal("execServices has no start command")
	return ""
}

// The worker is killed while a backup copies members of the previous one
// into its temporary archive: the retried step writes the archive again
// (copying again), the backup verifies and restores by hand with tar -xzf,
// and no half backup or temporary file is left.
func TestWorkerKilledMidReuse(t *testing.T) {
	t.Parallel()
	s := newSystem(t, "DATABASE_URL=")
	s.bin = faultWorkerBin
	makeStorage(t, s.root, 4)
	s.start()
	first := s.backup()
	restartWithFault(s, faultpoint.BackupReusing)
	s.mustStarter("backup", "--detach")
	killAtAndRestart(t, s, faultpoint.BackupReusing)
	waitFor(t, 4*time.Minute, "the second backup", func() bool {
		_, err := os.Stat(filepath.Join(s.root, "backups", ".vulcan.lock"))
		return os.IsNotExist(err) && backupCount(t, s) == 2
	})
	var list struct {
		Backups []struct {
			ID          string `json:"id"`
			FullRead    bool   `json:"full_read"`
			ReusedBytes int64  `json:"reused_bytes"`
		} `json:"backups"`
	}
	json.Unmarshal([]byte(s.mustStarter("list", "--json")), &list)
	second := list.Backups[0]
	if second.ID == first.Result.ID || second.FullRead || second.ReusedBytes == 0 {
		t.Fatalf("the second backup copied nothing: %+v", list.Backups)
	}
	s.mustStarter("verify", second.ID)
	out := t.TempDir()
	if b, err := exec.Command("tar", "-xzf", filepath.Join(s.root, "backups", "vulcan_backup_"+second.ID+".tar.gz"), "-C", out).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v: %s", err, b)
	}
	diffDigests(t, "tar -xzf of the copied backup", treeDigest(t, filepath.Join(s.root, "storage")), treeDigest(t, filepath.Join(out, "storage")))
	entries, _ := os.ReadDir(filepath.Join(s.root, "backups"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// The worker is killed while a drill extracts into its scratch root: the
// replacement runs the extraction again into the same claimed root, the
// drill passes, and neither its scratch root nor its database is left.
func TestWorkerKilledMidDrill(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 100)
	s := newSystem(t, "DATABASE_URL="+dbURL)
	s.bin = faultWorkerBin
	makeStorage(t, s.root, 4)
	s.start()
	b := s.backup()
	restartWithFault(s, faultpoint.DrillExtracting)
	s.mustStarter("drill", "--detach")
	killAtAndRestart(t, s, faultpoint.DrillExtracting)
	var rep workflows.DrillReport
	waitFor(t, 4*time.Minute, "the drill's report", func() bool {
		entries, _ := os.ReadDir(filepath.Join(s.root, "backups", "drills"))
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(s.root, "backups", "drills", e.Name()))
			if err == nil && json.Unmarshal(data, &rep) == nil {
				return true
			}
		}
		return false
	})
	if !rep.Passed || rep.BackupID != b.Result.ID || !rep.Loaded {
		t.Fatalf("drill after the crash: %+v", rep)
	}
	if l := drillLeftovers(t, s.root); len(l) > 0 {
		t.Errorf("left after the drill: %v", l)
	}
	if names := databaseNames(t, dbURL); strings.Contains(names, "drill") {
		t.Errorf("scratch database left: %s", names)
	}
}

// A restored file whose bytes on the disk differ from the backup's, though
// its size, mode and the hashes of the extracted stream are right (what a
// writer that wrote the wrong bytes leaves), is found by step 7, which
// reads every file back: the restore fails and is rolled back, whole.
func TestRestoreVerifyReadsTheFilesBack(t *testing.T) {
	t.Parallel()
	f := newCrashFixture(t, 300)
	s := f.s
	s.stop()
	s.setEnv(faultpoint.Env, faultpoint.BeforeVerify)
	s.start()
	f.startRestore(t)
	waitFor(t, 3*time.Minute, "fault point "+faultpoint.BeforeVerify, func() bool {
		return strings.Contains(s.logs.String(), "FAULTPOINT "+faultpoint.BeforeVerify+" reached")
	})
	damaged := filepath.Join(s.root, "storage/logs/app-000.log")
	data, err := os.ReadFile(damaged)
	if err != nil || len(data) == 0 {
		t.Fatalf("restored file: %v", err)
	}
	st, _ := os.Stat(damaged)
	data[len(data)/2] ^= 0x20
	if err := os.WriteFile(damaged, data, st.Mode()); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(damaged, st.ModTime(), st.ModTime())
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.setEnv(faultpoint.Env, "")
	s.start()
	_, err = f.waitRestore(t)
	if err == nil || !strings.Contains(err.Error(), "storage/logs/app-000.log") {
		t.Fatalf("restore with a damaged restored file: %v, want it refused naming the file", err)
	}
	f.assertWhole(t, false)
}
