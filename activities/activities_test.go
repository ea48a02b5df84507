package activities

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/pgdump"
	"github.com/project-vulcan/vulcan-backup/internal/restore"
	"github.com/project-vulcan/vulcan-backup/internal/services"
	"github.com/project-vulcan/vulcan-backup/internal/staging"
	"github.com/project-vulcan/vulcan-backup/internal/store"
	"github.com/project-vulcan/vulcan-backup/internal/testutil"
	"github.com/project-vulcan/vulcan-backup/workflows"
	"go.temporal.io/sdk/temporal"
)

// These tests call the activities directly (outside Temporal) on real files
// and a real PostgreSQL, covering the paths the workflow tests mock.

func newActivities(t *testing.T, dbURL string) *Activities {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "storage", "logs"), 0o755)
	os.WriteFile(filepath.Join(root, "storage", "logs", "a.log"), []byte("first\n"), 0o644)
	a := &Activities{Root: root, Paths: []string{"storage"}, Backups: store.Dir{Path: filepath.Join(root, "backups")},
		RetentionDays: 7, Services: services.None{}, ToolVersion: "test"}
	if dbURL != "" {
		tg, err := pgdump.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		a.DB = tg
	}
	return a
}

// verifiedUncommitted runs a manual backup's steps up to and including the
// read-back, one after the other, and returns its plan: everything but the
// commit.
func verifiedUncommitted(t *testing.T, a *Activities, at time.Time) workflows.BackupPlan {
	t.Helper()
	ctx := context.Background()
	plan, err := a.PrepareBackup(ctx, workflows.BackupPlan{Kind: workflows.KindManual, WorkflowID: "wf", RunID: "run", StartedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.DumpDatabase(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ArchiveStorage(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if _, err := a.VerifyBackup(ctx, plan); err != nil {
		t.Fatalf("an intact backup: %v", err)
	}
	return plan
}

// backup runs the backup steps as the workflow would and returns the result.
func backup(t *testing.T, a *Activities, kind string, at time.Time) workflows.BackupResult {
	t.Helper()
	return backupPlan(t, a, workflows.BackupPlan{Kind: kind, StartedAt: at})
}

// backupPlan is backup for a plan such as PrepareBackup receives.
func backupPlan(t *testing.T, a *Activities, req workflows.BackupPlan) workflows.BackupResult {
	t.Helper()
	ctx := context.Background()
	req.WorkflowID, req.RunID = "wf", "run-"+req.StartedAt.String()
	plan, err := a.PrepareBackup(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// As the workflow does: the dump runs beside the archive step, which
	// appends it once it is recorded.
	dumped := make(chan error, 1)
	go func() {
		time.Sleep(20 * time.Millisecond) // let the archive start first
		_, err := a.DumpDatabase(ctx, plan)
		dumped <- err
	}()
	_, aerr := a.ArchiveStorage(ctx, plan)
	if err := <-dumped; err != nil {
		t.Fatal(err)
	}
	if aerr != nil {
		t.Fatal(aerr)
	}
	if _, err := a.VerifyBackup(ctx, plan); err != nil {
		t.Fatal(err)
	}
	res, err := a.CommitBackup(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.CommitBackup(ctx, plan)
	if err != nil || again.ID != res.ID {
		t.Fatalf("a repeated commit must return the same backup: %+v %v", again, err)
	}
	return res
}

func TestCrashedAttemptIsCleanedByTheNext(t *testing.T) {
	a := newActivities(t, "")
	ctx := context.Background()
	at := time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC)
	plan, _ := a.PrepareBackup(ctx, workflows.BackupPlan{Kind: workflows.KindManual, StartedAt: at})
	a.DumpDatabase(ctx, plan)
	if _, err := a.ArchiveStorage(ctx, plan); err != nil {
		t.Fatal(err)
	}
	// The worker dies here. The next backup removes what it left.
	res := backup(t, a, workflows.KindManual, at.Add(time.Hour))
	entries, _ := os.ReadDir(a.Backups.Path)
	var names []string
	for _, e := range entries {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".vulcan.lock") {
			names = append(names, e.Name())
		}
	}
	if len(names) != 2 || !strings.Contains(strings.Join(names, " "), res.ID) {
		t.Fatalf("backup directory holds %v, want only backup %s", names, res.ID)
	}
}

// When a pre-restore copy is gone, the storage rollback restores the path
// from the emergency backup instead.
func TestRollbackStorageFallsBackToEmergencyBackup(t *testing.T) {
	a := newActivities(t, "")
	ctx := context.Background()
	good := backup(t, a, workflows.KindManual, time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC))
	os.WriteFile(filepath.Join(a.Root, "storage", "logs", "a.log"), []byte("current\n"), 0o644)
	emergency := backup(t, a, workflows.KindEmergency, time.Date(2025, 1, 2, 2, 0, 0, 0, time.UTC))

	in := workflows.StepInput{RestoreID: "20250103_000000", Archive: a.abs(good.Archive), Manifest: a.abs(good.Manifest)}
	if _, err := a.RestoreStorage(ctx, in); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(a.Root, "storage/logs/a.log")); string(b) != "first\n" {
		t.Fatalf("restored content %q", b)
	}
	tree := staging.Tree{Root: a.Root, ID: in.RestoreID}
	for _, d := range []string{tree.Dir(), a.Backups.Path, filepath.Join(a.Backups.Path, "database")} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v %v, want 0700", d, st.Mode().Perm(), err)
		}
	}
	// Lose the pre-restore copy, then roll back.
	os.RemoveAll(tree.PreRestore("storage"))
	out, err := a.RollbackStorage(ctx, workflows.RollbackInput{RestoreID: in.RestoreID, EmergencyManifest: emergency.Manifest})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.Action, "emergency backup") {
		t.Fatalf("action %q", out.Action)
	}
	if b, _ := os.ReadFile(filepath.Join(a.Root, "storage/logs/a.log")); string(b) != "current\n" {
		t.Fatalf("after rollback %q, want the state of the emergency backup", b)
	}
	// The discard that ends every rollback removes the staging directory.
	if err := a.DiscardStaging(ctx, in); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(a.Root)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".vulcan-restore-") || strings.Contains(e.Name(), "pre-restore") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

// With the in-place fallback, rolling back the database brings back its
// state when the load began, with the writes made after the emergency
// backup (the application runs until step 3), not the older emergency dump.
func TestRollbackInPlaceDatabase(t *testing.T) {
	url := testutil.NewNoCreateDatabase(t)
	testutil.LoadVulcanDB(t, url, 100)
	a := newActivities(t, url)
	ctx := context.Background()
	good := backup(t, a, workflows.KindManual, time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC))
	testutil.Psql(t, url, "-c", "INSERT INTO accounts (name) VALUES ('later')")
	emergency := backup(t, a, workflows.KindEmergency, time.Date(2025, 1, 2, 2, 0, 0, 0, time.UTC))
	testutil.Psql(t, url, "-c", "INSERT INTO accounts (name) VALUES ('after the emergency backup')")
	current := testutil.Fingerprint(t, url)

	in := workflows.StepInput{RestoreID: "20250103_000000", Archive: a.abs(good.Archive), Manifest: a.abs(good.Manifest)}
	if _, err := a.RestoreStorage(ctx, in); err != nil {
		t.Fatal(err)
	}
	out, err := a.RestoreDatabase(ctx, in)
	if err != nil || out.Mode != pgdump.ModeInPlace {
		t.Fatalf("restore database: %+v %v", out, err)
	}
	if testutil.Fingerprint(t, url)["r:accounts"] == current["r:accounts"] {
		t.Fatal("the restore did not change the accounts")
	}
	rb, err := a.RollbackDatabase(ctx, workflows.RollbackInput{RestoreID: in.RestoreID, EmergencyManifest: emergency.Manifest})
	if err != nil || !strings.Contains(rb.Action, "in place") {
		t.Fatalf("rollback: %+v %v", rb, err)
	}
	if got := testutil.Fingerprint(t, url); got["r:accounts"] != current["r:accounts"] {
		t.Fatal("rollback did not bring back the state before the restore")
	}
}

// Staging (step 2) prepares the files and a fresh database without touching
// what is in place; steps 4 and 5 then only swap. Discarding instead removes
// the staged copies and leaves everything as it was.
func TestStageThenSwapOrDiscard(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 100)
	a := newActivities(t, url)
	ctx := context.Background()
	good := backup(t, a, workflows.KindManual, time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC))
	wantDB := testutil.Fingerprint(t, url)
	testutil.Psql(t, url, "-c", "INSERT INTO accounts (name) VALUES ('later')")
	os.WriteFile(filepath.Join(a.Root, "storage", "logs", "a.log"), []byte("changed later\n"), 0o644)
	liveDB := testutil.Fingerprint(t, url)

	stage := func(id string) workflows.StepInput {
		t.Helper()
		in := workflows.StepInput{RestoreID: id, Archive: a.abs(good.Archive), Manifest: a.abs(good.Manifest)}
		if _, err := a.ValidateAndStage(ctx, workflows.StageInput{Archive: in.Archive, RestoreID: id}); err != nil {
			t.Fatal(err)
		}
		out, err := a.StageDatabase(ctx, in)
		if err != nil || out.Mode != pgdump.ModeRename {
			t.Fatalf("stage database: %+v %v", out, err)
		}
		// The standalone dump was loaded: nothing was extracted for it.
		if _, err := os.Stat(staging.Tree{Root: a.Root, ID: id}.MarkerPath("dump")); !os.IsNotExist(err) {
			t.Error("the dump was extracted from the archive instead of taken from backups/database/")
		}
		if got := testutil.Fingerprint(t, url); got["r:accounts"] != liveDB["r:accounts"] {
			t.Fatal("staging changed the database in place")
		}
		if data, _ := os.ReadFile(filepath.Join(a.Root, "storage", "logs", "a.log")); string(data) != "changed later\n" {
			t.Fatal("staging changed the files in place")
		}
		return in
	}

	// Discard: nothing in place changes, nothing is left.
	in := stage("20250103_000000")
	if err := a.DiscardStaging(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(staging.Tree{Root: a.Root, ID: in.RestoreID}.Dir()); !os.IsNotExist(err) {
		t.Errorf("staging directory left: %v", err)
	}
	if n := testutil.Psql(t, url, "-tAc", "SELECT count(*) FROM pg_database WHERE datname = '"+a.DB.RestoreName(in.RestoreID)+"'"); strings.TrimSpace(n) != "0" {
		t.Error("fresh database left after discard")
	}
	if got := testutil.Fingerprint(t, url); got["r:accounts"] != liveDB["r:accounts"] {
		t.Fatal("discard changed the database")
	}

	// Swap: the backup's files and rows are in place.
	in = stage("20250104_000000")
	if _, err := a.RestoreStorage(ctx, in); err != nil {
		t.Fatal(err)
	}
	if out, err := a.RestoreDatabase(ctx, in); err != nil || out.Mode != pgdump.ModeRename {
		t.Fatalf("restore database: %+v %v", out, err)
	}
	if data, _ := os.ReadFile(filepath.Join(a.Root, "storage", "logs", "a.log")); string(data) != "first\n" {
		t.Fatalf("storage not restored: %q", data)
	}
	got := testutil.Fingerprint(t, url)
	for k, v := range wantDB {
		if got[k] != v {
			t.Errorf("database %s not restored", k)
		}
	}
	if err := a.AnalyzeRestored(ctx, in); err != nil {
		t.Fatal(err)
	}
	// The clean-up gave the restored tables their statistics.
	if out := testutil.Psql(t, url, "-Atc", "SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NULL"); strings.TrimSpace(out) != "0" {
		t.Errorf("%s restored tables without statistics after FinishRestore", strings.TrimSpace(out))
	}
}

// The read-back checks the standalone dump too (hashed beside the archive):
// a dump damaged after it was written fails the backup, as an integrity
// error, and so does a damaged archive.
func TestVerifyBackupFindsADamagedDumpOrArchive(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 100)
	for _, damage := range []string{"dump", "archive"} {
		t.Run(damage, func(t *testing.T) {
			a := newActivities(t, url)
			ctx := context.Background()
			plan := verifiedUncommitted(t, a, time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC))
			file := a.Backups.TempDumpPath(plan.ID)
			if damage == "archive" {
				file = a.Backups.TempArchivePath(plan.ID)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0x20
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			// The dump's hash differs; the archive's damage is found in the
			// member or entry it lies in (its stream is not hashed again).
			_, err = a.VerifyBackup(ctx, plan)
			if err == nil || !strings.Contains(err.Error(), "verify "+damage) || (damage == "dump" && !strings.Contains(err.Error(), "mismatch")) {
				t.Fatalf("damaged %s: got %v, want an integrity error from verify %s", damage, err, damage)
			}
			var app *temporal.ApplicationError
			if !errors.As(err, &app) || !app.NonRetryable() || app.Type() != workflows.ErrTypeIntegrity {
				t.Fatalf("damaged %s: %v is not a non-retryable integrity error; a damaged file does not heal", damage, err)
			}
		})
	}
}

// Step 1 of a restore that goes ahead validates the archive by extracting it
// into the staging directory: a sound backup is staged (and a retry reuses
// it), a damaged one fails non-retryably, and a database that is down stops
// it before anything is written. Nothing in place changes in any case.
func TestValidateAndStage(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 100)
	a := newActivities(t, url)
	ctx := context.Background()
	good := backup(t, a, workflows.KindManual, time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC))
	live := filepath.Join(a.Root, "storage", "logs", "a.log")
	os.WriteFile(live, []byte("changed later\n"), 0o644)
	unchanged := func() {
		t.Helper()
		if data, _ := os.ReadFile(live); string(data) != "changed later\n" {
			t.Fatal("step 1 changed the files in place")
		}
	}

	t.Run("sound", func(t *testing.T) {
		in := workflows.StageInput{Archive: good.ID, RestoreID: "20250105_000000"}
		sp, err := a.ValidateAndStage(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if sp.Plan.BackupID != good.ID || sp.Plan.Manifest != a.abs(good.Manifest) || !sp.Plan.HasDatabase || sp.Plan.FreeBytes == 0 || sp.Staged.Files == 0 {
			t.Fatalf("plan %+v", sp)
		}
		tree := staging.Tree{Root: a.Root, ID: in.RestoreID}
		if data, err := os.ReadFile(tree.Staged("storage/logs/a.log")); err != nil || string(data) != "first\n" {
			t.Fatalf("staged copy: %q %v", data, err)
		}
		unchanged()
		// A retry after a complete extraction reuses it.
		again, err := a.ValidateAndStage(ctx, in)
		if err != nil || again.Staged.Files != sp.Plan.Files {
			t.Fatalf("retry: %+v %v", again, err)
		}
		// Step 4 swaps what step 1 staged.
		step := workflows.StepInput{RestoreID: in.RestoreID, Archive: sp.Plan.Archive, Manifest: sp.Plan.Manifest}
		if _, err := a.RestoreStorage(ctx, step); err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(live); string(data) != "first\n" {
			t.Fatalf("storage not swapped in: %q", data)
		}
		if _, err := a.RollbackStorage(ctx, workflows.RollbackInput{RestoreID: in.RestoreID}); err != nil {
			t.Fatal(err)
		}
		unchanged()
		if err := a.DiscardStaging(ctx, step); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("damaged", func(t *testing.T) {
		archivePath := a.abs(good.Archive)
		orig, err := os.ReadFile(archivePath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(archivePath, orig, 0o600) })
		bad := append([]byte(nil), orig...)
		bad[len(bad)/2] ^= 0x20
		os.WriteFile(archivePath, bad, 0o600)
		in := workflows.StageInput{Archive: good.ID, RestoreID: "20250106_000000"}
		_, err = a.ValidateAndStage(ctx, in)
		var app *temporal.ApplicationError
		if !errors.As(err, &app) || app.Type() != workflows.ErrTypeIntegrity || !app.NonRetryable() {
			t.Fatalf("damaged archive: got %v, want a non-retryable integrity error", err)
		}
		unchanged()
		if err := a.DiscardStaging(ctx, workflows.StepInput{RestoreID: in.RestoreID}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(staging.Tree{Root: a.Root, ID: in.RestoreID}.Dir()); !os.IsNotExist(err) {
			t.Fatalf("staging directory left: %v", err)
		}
	})

	t.Run("database down", func(t *testing.T) {
		down, err := pgdump.Parse("postgres://vulcan@127.0.0.1:1/vulcan?connect_timeout=2")
		if err != nil {
			t.Fatal(err)
		}
		b := a
		up := a.DB
		b.DB = down
		defer func() { a.DB = up }()
		in := workflows.StageInput{Archive: good.ID, RestoreID: "20250107_000000"}
		if _, err := b.ValidateAndStage(ctx, in); err == nil || !strings.Contains(err.Error(), "database to restore into") {
			t.Fatalf("database down: got %v", err)
		}
		if _, err := os.Stat(staging.Tree{Root: a.Root, ID: in.RestoreID}.Dir()); !os.IsNotExist(err) {
			t.Fatalf("a restore that cannot go ahead wrote a staging directory: %v", err)
		}
		// Discarding needs no database when none was created.
		if err := b.DiscardStaging(ctx, workflows.StepInput{RestoreID: in.RestoreID}); err != nil {
			t.Fatalf("discard with the database down: %v", err)
		}
	})
}

// Step 7 checks files, rows and services at once and lists the problems in
// that order: a verified state has none, and a file and a row that changed
// afterwards are both reported.
func TestVerifyRestoreListsEveryProblem(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 100)
	a := newActivities(t, url)
	ctx := context.Background()
	b := backup(t, a, workflows.KindManual, time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC))
	for _, layoutOnly := range []bool{false, true} {
		out, err := a.VerifyRestore(ctx, workflows.VerifyInput{Manifest: b.Manifest, LayoutOnly: layoutOnly})
		if err != nil || len(out.Problems) != 0 || out.Files == 0 || out.Tables == 0 {
			t.Fatalf("layout only %v: the backed-up state: %+v, %v", layoutOnly, out, err)
		}
	}
	if err := os.Remove(filepath.Join(a.Root, "storage", "logs", "a.log")); err != nil {
		t.Fatal(err)
	}
	testutil.Psql(t, url, "-c", "DELETE FROM validation_attachments WHERE ctid IN (SELECT ctid FROM validation_attachments LIMIT 1)")
	out, err := a.VerifyRestore(ctx, workflows.VerifyInput{Manifest: b.Manifest, LayoutOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Problems) != 2 || !strings.Contains(out.Problems[0], "a.log") || !strings.Contains(out.Problems[1], "validation_attachments") {
		t.Fatalf("problems %q: want the missing file, then the row count", out.Problems)
	}
}

// A commit interrupted between its renames (the dump in place, the archive
// and the manifest not yet) is completed by the retried attempt, and the
// backup then exists whole; it must not fail on the missing temporary dump.
func TestCommitInterruptedBetweenRenamesCompletes(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 50)
	a := newActivities(t, url)
	ctx := context.Background()
	plan := verifiedUncommitted(t, a, time.Date(2025, 1, 5, 2, 0, 0, 0, time.UTC))
	// The first attempt got as far as the dump's rename.
	if err := os.Rename(a.Backups.TempDumpPath(plan.ID), a.Backups.DumpPath(plan.ID)); err != nil {
		t.Fatal(err)
	}
	res, err := a.CommitBackup(ctx, plan)
	if err != nil {
		t.Fatalf("retried commit: %v", err)
	}
	m, err := manifest.Read(a.Backups.ManifestPath(res.ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyArchiveFile(ctx, a.Backups.ArchivePath(res.ID), m, nil); err != nil {
		t.Fatalf("committed archive: %v", err)
	}
	if sum, _, err := archive.HashFile(a.Backups.DumpPath(res.ID)); err != nil || sum != m.Database.SHA256 {
		t.Fatalf("committed dump: %s %v", sum, err)
	}
	// A leftover of that name is no longer debris for the next backup.
	if removed, _ := a.Backups.CleanDebris(); len(removed) > 0 {
		t.Fatalf("the next backup would remove %v", removed)
	}
}

// stageFor stages backup b for restore id as steps 1 and 2 do.
func stageFor(t *testing.T, a *Activities, b workflows.BackupResult, id string) workflows.StepInput {
	t.Helper()
	ctx := context.Background()
	in := workflows.StepInput{RestoreID: id, Archive: a.abs(b.Archive), Manifest: a.abs(b.Manifest)}
	if _, err := a.ValidateAndStage(ctx, workflows.StageInput{Archive: in.Archive, RestoreID: id}); err != nil {
		t.Fatal(err)
	}
	if a.DB != nil {
		if _, err := a.StageDatabase(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

// A restore whose storage swap is undone (step 4 failed or was cancelled)
// leaves no fresh database behind: the undo keeps the record of the
// database's mode for the discard that runs after it.
func TestStorageRollbackThenDiscardDropsTheFreshDatabase(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 50)
	a := newActivities(t, url)
	ctx := context.Background()
	b := backup(t, a, workflows.KindManual, time.Date(2025, 1, 6, 2, 0, 0, 0, time.UTC))
	in := stageFor(t, a, b, "20250106_100000")
	if _, err := a.RestoreStorage(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RollbackStorage(ctx, workflows.RollbackInput{RestoreID: in.RestoreID}); err != nil {
		t.Fatal(err)
	}
	if err := a.DiscardStaging(ctx, in); err != nil {
		t.Fatal(err)
	}
	if n := testutil.Psql(t, url, "-tAc", "SELECT count(*) FROM pg_database WHERE datname = '"+a.DB.RestoreName(in.RestoreID)+"'"); strings.TrimSpace(n) != "0" {
		t.Error("the fresh database is left on the server")
	}
	if _, err := os.Stat(staging.Tree{Root: a.Root, ID: in.RestoreID}.Dir()); !os.IsNotExist(err) {
		t.Errorf("staging directory left: %v", err)
	}
}

// Where one path's pre-restore copy is lost, the rollback restores that path
// from the emergency backup and leaves the other, put back from its newer
// copy, alone: the emergency backup is older than the copies.
func TestEmergencyFallbackRestoresOnlyTheMissingPaths(t *testing.T) {
	a := newActivities(t, "")
	a.Paths = []string{"storage", "uploads"}
	os.MkdirAll(filepath.Join(a.Root, "uploads"), 0o755)
	os.WriteFile(filepath.Join(a.Root, "uploads", "u.txt"), []byte("backed up\n"), 0o644)
	ctx := context.Background()
	b := backup(t, a, workflows.KindManual, time.Date(2025, 1, 7, 2, 0, 0, 0, time.UTC))
	os.WriteFile(filepath.Join(a.Root, "uploads", "u.txt"), []byte("emergency\n"), 0o644)
	os.WriteFile(filepath.Join(a.Root, "storage", "logs", "a.log"), []byte("emergency\n"), 0o644)
	e := backup(t, a, workflows.KindEmergency, time.Date(2025, 1, 7, 3, 0, 0, 0, time.UTC))
	// Written after the emergency backup, before the services stopped.
	os.WriteFile(filepath.Join(a.Root, "uploads", "u.txt"), []byte("latest\n"), 0o644)
	os.WriteFile(filepath.Join(a.Root, "storage", "logs", "a.log"), []byte("latest\n"), 0o644)

	in := stageFor(t, a, b, "20250107_100000")
	if _, err := a.RestoreStorage(ctx, in); err != nil {
		t.Fatal(err)
	}
	tree := staging.Tree{Root: a.Root, ID: in.RestoreID}
	os.RemoveAll(tree.PreRestore("storage"))
	if _, err := a.RollbackStorage(ctx, workflows.RollbackInput{RestoreID: in.RestoreID, EmergencyManifest: e.Manifest}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"uploads/u.txt": "latest\n", "storage/logs/a.log": "emergency\n"} {
		if got, _ := os.ReadFile(filepath.Join(a.Root, p)); string(got) != want {
			t.Errorf("%s after the rollback: %q, want %q", p, got, want)
		}
	}
}

// A retried step 1 counts the space its own earlier staged copy takes as
// free (the copy is replaced): a restore that fitted the first time is not
// refused for space on its retry.
func TestRetriedStagingCountsItsOwnCopy(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Need(t, "mounting a tmpfs needs root")
	}
	a := newActivities(t, "")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=205m", "tmpfs", a.Root).CombinedOutput(); err != nil {
		testutil.Need(t, fmt.Sprintf("cannot mount a tmpfs: %v %s", err, out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", a.Root).Run() })
	data := make([]byte, 40<<20)
	rand.Read(data)
	os.MkdirAll(filepath.Join(a.Root, "storage"), 0o755)
	if err := os.WriteFile(filepath.Join(a.Root, "storage", "rec.webm"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	b := backup(t, a, workflows.KindManual, time.Date(2025, 1, 8, 2, 0, 0, 0, time.UTC))
	stage := workflows.StageInput{Archive: a.abs(b.Archive), RestoreID: "20250108_100000"}
	if _, err := a.ValidateAndStage(context.Background(), stage); err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	if _, err := a.ValidateAndStage(context.Background(), stage); err != nil {
		t.Fatalf("retried attempt: %v", err)
	}
}

// A retried dump removes the record its predecessor wrote before it rewrites
// the dump, so the archive step running beside it cannot append a dump that
// is being rewritten (or is gone, when the retry fails).
func TestRetriedDumpRemovesTheStaleRecord(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 20)
	a := newActivities(t, url)
	ctx := context.Background()
	plan, err := a.PrepareBackup(ctx, workflows.BackupPlan{Kind: workflows.KindManual, WorkflowID: "wf", RunID: "run", StartedAt: time.Date(2025, 1, 9, 2, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.DumpDatabase(ctx, plan); err != nil {
		t.Fatal(err)
	}
	// The retry finds the database gone.
	bad, err := pgdump.Parse("postgres://nobody:x@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	a.DB = bad
	if _, err := a.DumpDatabase(ctx, plan); err == nil {
		t.Fatal("dump of an unreachable database succeeded")
	}
	if rec, err := a.readDumpRecord(plan.ID); err != nil || rec != nil {
		t.Fatalf("the first attempt's record is still there: %+v %v", rec, err)
	}
}

// A manifest may only name configured paths, and never the backup directory,
// the state directory or the root: step 4 renames whatever it names (a
// manifest naming "backups" would rename away the lock and the emergency
// backup).
func TestManifestPathsMustBeConfigured(t *testing.T) {
	a := newActivities(t, "")
	a.Paths = []string{"storage", "backups", ".vulcan"} // misconfigured, too
	for _, c := range []struct {
		paths []string
		ok    bool
	}{
		{[]string{"storage"}, true},
		{[]string{"uploads"}, false},
		{[]string{"backups"}, false},
		{[]string{".vulcan"}, false},
		{[]string{"."}, false},
		{[]string{"storage/../backups"}, false},
	} {
		err := a.checkManifestPaths(&manifest.Manifest{ID: "20250110_000000", Paths: c.paths})
		if (err == nil) != c.ok {
			t.Errorf("paths %v: %v, want ok=%v", c.paths, err, c.ok)
		}
	}
	// Through step 1: refused as bad input, nothing staged.
	a.Paths = []string{"storage"}
	b := backup(t, a, workflows.KindManual, time.Date(2025, 1, 10, 2, 0, 0, 0, time.UTC))
	a.Paths = []string{"uploads"}
	_, err := a.ValidateAndStage(context.Background(), workflows.StageInput{Archive: b.ID, RestoreID: "20250110_100000"})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != workflows.ErrTypeBadInput || !strings.Contains(err.Error(), "VULCAN_PATHS") {
		t.Fatalf("want bad input naming VULCAN_PATHS, got %v", err)
	}
	if _, err := os.Stat(staging.Tree{Root: a.Root, ID: "20250110_100000"}.Dir()); !os.IsNotExist(err) {
		t.Error("a staging directory was created")
	}
}

// A restore uses only archives in the backup directory.
func TestRestoreRefusesAnArchiveFromElsewhere(t *testing.T) {
	a := newActivities(t, "")
	b := backup(t, a, workflows.KindManual, time.Date(2025, 1, 11, 2, 0, 0, 0, time.UTC))
	planted := filepath.Join(t.TempDir(), "tmp")
	os.MkdirAll(planted, 0o755)
	for _, f := range []string{b.Archive, b.Manifest} {
		data, _ := os.ReadFile(a.abs(f))
		os.WriteFile(filepath.Join(planted, filepath.Base(f)), data, 0o644)
	}
	_, err := a.ValidateAndStage(context.Background(), workflows.StageInput{Archive: filepath.Join(planted, filepath.Base(b.Archive)), RestoreID: "20250111_100000"})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != workflows.ErrTypeBadInput || !strings.Contains(err.Error(), "not in the backup directory") {
		t.Fatalf("want bad input, got %v", err)
	}
}

// The stall watch stops a step whose tool moves nothing for the limit, and
// leaves alone one that keeps moving.
func TestStallWatch(t *testing.T) {
	hb := startHeartbeat(context.Background())
	defer hb.end()
	ctx, stop := hb.watch(context.Background(), 300*time.Millisecond, "pg_dump")
	for range 8 { // moving for 800 ms
		time.Sleep(100 * time.Millisecond)
		hb.set(1)
	}
	if ctx.Err() != nil {
		t.Fatalf("stopped while moving: %v", context.Cause(ctx))
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not stopped after moving nothing")
	}
	if err := restore.Stalled(ctx, ctx.Err()); !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "pg_dump moved no bytes") {
		t.Fatalf("cause %v", err)
	}
	stop()
}

// A pg_dump that waits for ever on a table another session holds locked
// moves no bytes: the dump is stopped as stalled (and so retried) instead
// of holding the backup for hours.
func TestStuckDumpIsStopped(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 20)
	a := newActivities(t, url)
	a.StallTimeout = 2 * time.Second
	ctx := context.Background()
	conn, err := a.DB.Connect(ctx, a.DB.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	plan, err := a.PrepareBackup(ctx, workflows.BackupPlan{Kind: workflows.KindManual, StartedAt: time.Date(2025, 1, 13, 2, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := a.DumpDatabase(ctx, plan); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStalled) {
			t.Fatalf("want a stall, got %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the stuck dump was not stopped")
	}
	if _, err := os.Stat(a.Backups.TempDumpPath(plan.ID)); !os.IsNotExist(err) {
		t.Errorf("the partial dump is left: %v", err)
	}
}

// A backup that recorded a setuid or setgid file says so in the restore's
// plan (the starter prints it): the file is restored without the bit.
func TestRestorePlanListsSetIDFiles(t *testing.T) {
	a := newActivities(t, "")
	tool := filepath.Join(a.Root, "storage", "logs", "tool")
	os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755)
	if err := os.Chmod(tool, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	b := backup(t, a, workflows.KindManual, time.Date(2025, 1, 14, 2, 0, 0, 0, time.UTC))
	plan, err := a.ValidateArchive(context.Background(), workflows.RestoreInput{Archive: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.SetIDFiles) != 1 || plan.SetIDFiles[0] != "storage/logs/tool" {
		t.Fatalf("setid files %v", plan.SetIDFiles)
	}
}

// restoreFully runs a restore's storage and database steps and returns its
// step input, as a verified restore leaves it for its undo window.
func restoreFully(t *testing.T, a *Activities, b workflows.BackupResult, id string) workflows.StepInput {
	t.Helper()
	ctx := context.Background()
	in := stageFor(t, a, b, id)
	if _, err := a.RestoreStorage(ctx, in); err != nil {
		t.Fatal(err)
	}
	if a.DB != nil {
		if _, err := a.RestoreDatabase(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

// The clean-up at the end of a restore's undo window leaves copies an undo
// has borrowed alone while any operation holds the lock (the undo itself):
// it fails retryably and removes what is left once the lock is free. A
// clean-up that has begun keeps a later undo off the copies.
func TestCleanupWaitsForTheUndoThatBorrowed(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 50)
	a := newActivities(t, url)
	ctx := context.Background()
	b := backup(t, a, workflows.KindManual, time.Date(2025, 1, 7, 2, 0, 0, 0, time.UTC))
	os.WriteFile(filepath.Join(a.Root, "storage/logs/after.log"), []byte("after the backup"), 0o644)
	r := restoreFully(t, a, b, "20250107_100000")

	undo := workflows.StageInput{Undo: r.RestoreID, RestoreID: "20250107_110000"}
	if _, err := a.AcquireLock(ctx, workflows.LockRequest{Operation: "restore", WorkflowID: "the-undo"}); err != nil {
		t.Fatal(err)
	}
	sp, err := a.PrepareUndo(ctx, undo)
	if err != nil {
		t.Fatal(err)
	}
	if sp.Plan.Kind != "undo" || sp.Plan.Files == 0 || !sp.Plan.HasDatabase {
		t.Fatalf("undo plan: %+v", sp.Plan)
	}
	err = a.FinishRestore(ctx, r)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.NonRetryable() || !strings.Contains(err.Error(), "undo 20250107_110000") {
		t.Fatalf("clean-up while the undo runs: %v, want a retryable wait", err)
	}
	staged := staging.Tree{Root: a.Root, ID: undo.RestoreID}.Staged("storage/logs/after.log")
	if data, err := os.ReadFile(staged); err != nil || string(data) != "after the backup" {
		t.Fatalf("the borrowed copy: %q %v", data, err)
	}
	// The undo stops before its swap: the copies go back, then the clean-up
	// removes them, as the window has ended.
	if err := a.DiscardStaging(ctx, workflows.StepInput{RestoreID: undo.RestoreID}); err != nil {
		t.Fatal(err)
	}
	if err := a.ReleaseLock(ctx, workflows.LockRequest{WorkflowID: "the-undo"}); err != nil {
		t.Fatal(err)
	}
	if err := a.FinishRestore(ctx, r); err != nil {
		t.Fatal(err)
	}
	if l := testutil.Psql(t, url, "-tAc", "SELECT count(*) FROM pg_database WHERE datname LIKE '"+a.DB.Name+"\\_%'"); strings.TrimSpace(l) != "0" {
		t.Errorf("%s kept or borrowed databases left", l)
	}
	entries, _ := os.ReadDir(a.Root)
	for _, e := range entries {
		if strings.Contains(e.Name(), "restore") {
			t.Errorf("left after the clean-up: %s", e.Name())
		}
	}

	// A clean-up under way keeps an undo off the copies it removes.
	r2 := restoreFully(t, a, b, "20250107_120000")
	claim := staging.Tree{Root: a.Root, ID: r2.RestoreID}.MarkerPath("claim")
	os.WriteFile(claim, []byte("finish"), 0o600)
	_, err = a.PrepareUndo(ctx, workflows.StageInput{Undo: r2.RestoreID, RestoreID: "20250107_130000"})
	if !errors.As(err, &app) || app.Type() != workflows.ErrTypeBadInput || !strings.Contains(err.Error(), "being removed") {
		t.Fatalf("undo during the clean-up: %v", err)
	}
	if _, err := os.Stat(staging.Tree{Root: a.Root, ID: r2.RestoreID}.PreRestore("storage")); err != nil {
		t.Fatalf("a refused undo moved the copy: %v", err)
	}
}

// An undo of a restore that restored the database, by a worker without
// DATABASE_URL, is refused as bad input and moves nothing.
func TestUndoWithoutTheDatabaseIsRefused(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 20)
	a := newActivities(t, url)
	b := backup(t, a, workflows.KindManual, time.Date(2025, 1, 8, 2, 0, 0, 0, time.UTC))
	r := restoreFully(t, a, b, "20250108_100000")
	a.DB = nil
	_, err := a.PrepareUndo(context.Background(), workflows.StageInput{Undo: r.RestoreID, RestoreID: "20250108_110000"})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != workflows.ErrTypeBadInput || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("undo without DATABASE_URL: %v", err)
	}
	if _, err := os.Stat(staging.Tree{Root: a.Root, ID: r.RestoreID}.PreRestore("storage")); err != nil {
		t.Fatalf("the refused undo moved the copy: %v", err)
	}
}

// FreeRestoreID skips every second whose staging directory, pre-restore
// copy or database exists, and refuses an id that is not one.
func TestFreeRestoreIDSkipsTakenNames(t *testing.T) {
	url := testutil.NewDatabase(t)
	a := newActivities(t, url)
	ctx := context.Background()
	const wanted = "20250107_100000"
	got, err := a.FreeRestoreID(ctx, wanted)
	if err != nil || got != wanted {
		t.Fatalf("nothing taken: %q, %v", got, err)
	}
	os.MkdirAll(a.job(wanted).Tree.Dir(), 0o700)
	os.MkdirAll(a.job("20250107_100001").Tree.PreRestore("storage"), 0o700)
	testutil.Psql(t, url, "-c", `CREATE DATABASE "`+a.DB.RestoreName("20250107_100002")+`"`)
	t.Cleanup(func() {
		testutil.Psql(t, url, "-c", `DROP DATABASE IF EXISTS "`+a.DB.RestoreName("20250107_100002")+`"`)
	})
	testutil.Psql(t, url, "-c", `CREATE DATABASE "`+a.DB.PreRestoreName("20250107_100003")+`"`)
	t.Cleanup(func() {
		testutil.Psql(t, url, "-c", `DROP DATABASE IF EXISTS "`+a.DB.PreRestoreName("20250107_100003")+`"`)
	})
	if got, err = a.FreeRestoreID(ctx, wanted); err != nil || got != "20250107_100004" {
		t.Fatalf("staging, storage copy and both database names taken: %q, %v; want 20250107_100004", got, err)
	}
	var app *temporal.ApplicationError
	if _, err := a.FreeRestoreID(ctx, "../x"); !errors.As(err, &app) || app.Type() != workflows.ErrTypeBadInput {
		t.Fatalf("a malformed id: %v", err)
	}
}
