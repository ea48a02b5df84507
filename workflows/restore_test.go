package workflows_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

// Stubs with the activities' signatures: registered under the activity
// names, then replaced by mocks in each test.
func stubLock(ctx activityCtx, _ wf.LockRequest) (wf.Grant, error) { return wf.Grant{}, nil }
func stubRelease(ctx activityCtx, _ wf.LockRequest) error          { return nil }
func stubValidate(ctx activityCtx, _ wf.RestoreInput) (wf.RestorePlan, error) {
	return wf.RestorePlan{}, nil
}
func stubValidateAndStage(ctx activityCtx, _ wf.StageInput) (wf.StagedPlan, error) {
	return wf.StagedPlan{}, nil
}
func stubRunning(ctx activityCtx) ([]string, error)  { return nil, nil }
func stubServices(ctx activityCtx, _ []string) error { return nil }
func stubStorage(ctx activityCtx, _ wf.StepInput) (wf.StorageOutput, error) {
	return wf.StorageOutput{}, nil
}
func stubDatabase(ctx activityCtx, _ wf.StepInput) (wf.DatabaseOutput, error) {
	return wf.DatabaseOutput{}, nil
}
func stubVerify(ctx activityCtx, _ wf.VerifyInput) (wf.VerifyOutput, error) {
	return wf.VerifyOutput{}, nil
}
func stubFinish(ctx activityCtx, _ wf.StepInput) error          { return nil }
func stubFreeID(ctx activityCtx, wanted string) (string, error) { return wanted, nil }
func stubRollback(ctx activityCtx, _ wf.RollbackInput) (wf.RollbackOutput, error) {
	return wf.RollbackOutput{}, nil
}
func stubPlan(ctx activityCtx, p wf.BackupPlan) (wf.BackupPlan, error) { return p, nil }
func stubDump(ctx activityCtx, _ wf.BackupPlan) (wf.DumpOutput, error) { return wf.DumpOutput{}, nil }
func stubArchive(ctx activityCtx, _ wf.BackupPlan) (wf.ArchiveOutput, error) {
	return wf.ArchiveOutput{}, nil
}
func stubVerifyBackup(ctx activityCtx, _ wf.BackupPlan) error { return nil }
func stubCommit(ctx activityCtx, p wf.BackupPlan) (wf.BackupResult, error) {
	return wf.BackupResult{ID: p.ID}, nil
}
func stubRetention(ctx activityCtx, _ wf.RetentionInput) (wf.RetentionOutput, error) {
	return wf.RetentionOutput{}, nil
}

func stubReport(ctx activityCtx, _ wf.Outcome) error { return nil }

type activityCtx = interface {
	Deadline() (time.Time, bool)
	Done() <-chan struct{}
	Err() error
	Value(any) any
}

func register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterWorkflowWithOptions(wf.BackupWorkflow, workflow.RegisterOptions{Name: wf.BackupWorkflowName})
	env.RegisterWorkflowWithOptions(wf.RestoreWorkflow, workflow.RegisterOptions{Name: wf.RestoreWorkflowName})
	env.RegisterWorkflowWithOptions(wf.CleanupWorkflow, workflow.RegisterOptions{Name: wf.CleanupWorkflowName})
	env.RegisterWorkflowWithOptions(wf.RestoreCleanupWorkflow, workflow.RegisterOptions{Name: wf.RestoreCleanupWorkflowName})
	env.RegisterWorkflowWithOptions(wf.OffsiteCopyWorkflow, workflow.RegisterOptions{Name: wf.OffsiteCopyWorkflowName})
	for name, fn := range map[string]any{
		wf.AcquireLockActivity: stubLock, wf.ReleaseLockActivity: stubRelease,
		wf.ValidateArchiveActivity: stubValidate, wf.ValidateAndStageActivity: stubValidateAndStage,
		wf.RunningServicesActivity: stubRunning,
		wf.StopServicesActivity:    stubServices, wf.StartServicesActivity: stubServices,
		wf.RestoreStorageActivity: stubStorage, wf.RestoreDatabaseActivity: stubDatabase,
		wf.VerifyRestoreActivity: stubVerify, wf.FinishRestoreActivity: stubFinish, wf.AnalyzeRestoredActivity: stubFinish,
		wf.RollbackStorageActivity: stubRollback, wf.RollbackDatabaseActivity: stubRollback,
		wf.PrepareBackupActivity: stubPlan, wf.DumpDatabaseActivity: stubDump, wf.ArchiveStorageActivity: stubArchive,
		wf.VerifyBackupActivity: stubVerifyBackup, wf.CommitBackupActivity: stubCommit, wf.ApplyRetentionActivity: stubRetention,
		wf.ListForBackupActivity: stubRunning, wf.StopForBackupActivity: stubServices, wf.StartAfterBackupActivity: stubServices,
		wf.ReportOutcomeActivity: stubReport,
		wf.StageDatabaseActivity: stubDatabase, wf.DiscardStagingActivity: stubFinish,
		wf.FreeRestoreIDActivity: stubFreeID, wf.CopyOffsiteActivity: stubCopyOffsite, wf.CollectOffsiteActivity: stubCollectOffsite,
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

var (
	plan      = wf.RestorePlan{Archive: "/r/backups/a.tar.gz", Manifest: "/r/backups/a.json", BackupID: "20250101_000000", HasDatabase: true, Paths: []string{"storage"}, Database: "vulcan"}
	emergency = wf.BackupResult{ID: "20250102_000000", Kind: wf.KindEmergency, Manifest: "backups/e.json", Database: true}
	running   = []string{"app", "chroma"}
)

// restoreEnv returns an environment where every step succeeds, except what
// the overrides (registered first, so they match first) change.
func restoreEnv(t *testing.T, overrides ...func(*testsuite.TestWorkflowEnvironment)) *testsuite.TestWorkflowEnvironment {
	return newRestoreEnv(t, true, overrides...)
}

// newRestoreEnv is restoreEnv; without mockEmergency the emergency backup is
// the real BackupWorkflow, whose activities the overrides must mock. (A
// mocked child that waits for a signal never counts as started in the test
// environment, so it could not receive one.)
func newRestoreEnv(t *testing.T, mockEmergency bool, overrides ...func(*testsuite.TestWorkflowEnvironment)) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	register(env)
	for _, o := range overrides {
		o(env)
	}
	env.OnActivity(wf.AcquireLockActivity, mock.Anything, mock.Anything).Return(wf.Grant{}, nil)
	env.OnActivity(wf.ReleaseLockActivity, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(wf.ValidateArchiveActivity, mock.Anything, mock.Anything).Return(plan, nil)
	env.OnActivity(wf.ValidateAndStageActivity, mock.Anything, mock.Anything).Return(wf.StagedPlan{Plan: plan, Staged: wf.StorageOutput{Paths: []string{"storage"}, Files: 3}}, nil)
	if mockEmergency {
		env.OnWorkflow(wf.BackupWorkflowName, mock.Anything, wf.BackupInput{Kind: wf.KindEmergency, LockHeld: true, AwaitProceed: true}).Return(&emergency, nil)
	}
	env.OnActivity(wf.StageDatabaseActivity, mock.Anything, mock.Anything).Return(wf.DatabaseOutput{Mode: "rename"}, nil)
	env.OnActivity(wf.DiscardStagingActivity, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(wf.RunningServicesActivity, mock.Anything).Return(running, nil)
	env.OnActivity(wf.StopServicesActivity, mock.Anything, running).Return(nil)
	env.OnActivity(wf.StartServicesActivity, mock.Anything, running).Return(nil)
	env.OnActivity(wf.RestoreStorageActivity, mock.Anything, mock.Anything).Return(wf.StorageOutput{Paths: []string{"storage"}, Files: 3}, nil)
	env.OnActivity(wf.RestoreDatabaseActivity, mock.Anything, mock.Anything).Return(wf.DatabaseOutput{Mode: "rename"}, nil)
	env.OnActivity(wf.VerifyRestoreActivity, mock.Anything, mock.Anything).Return(wf.VerifyOutput{Files: 3, Tables: 4}, nil)
	env.OnActivity(wf.FinishRestoreActivity, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(wf.AnalyzeRestoredActivity, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(wf.RollbackStorageActivity, mock.Anything, mock.Anything).Return(wf.RollbackOutput{Action: "swapped back"}, nil)
	env.OnActivity(wf.RollbackDatabaseActivity, mock.Anything, mock.Anything).Return(wf.RollbackOutput{Action: "renamed back"}, nil)
	env.OnActivity(wf.ReportOutcomeActivity, mock.Anything, mock.Anything).Return(nil)
	return env
}

func boom(msg string) error { return temporal.NewNonRetryableApplicationError(msg, "Test", nil) }

func TestRestoreHappyPath(t *testing.T) {
	env := restoreEnv(t)
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res wf.RestoreResult
	env.GetWorkflowResult(&res)
	if res.EmergencyBackup == nil || res.EmergencyBackup.ID != emergency.ID || res.Database.Mode != "rename" || len(res.Stopped) != 2 {
		t.Fatalf("result %+v", res)
	}
	// The pre-restore copies go in a workflow of their own.
	if res.CleanupWorkflowID != "default-test-workflow-id-cleanup" {
		t.Fatalf("cleanup workflow %q", res.CleanupWorkflowID)
	}
	env.AssertActivityNumberOfCalls(t, wf.FinishRestoreActivity, 1)
	// Step 1 validates by staging the files: one read of the archive, and
	// no second extraction beside the emergency backup.
	env.AssertActivityCalled(t, wf.ValidateAndStageActivity, mock.Anything, mock.MatchedBy(func(in wf.StageInput) bool {
		return in.Archive == "a.tar.gz" && in.RestoreID == res.RestoreID && res.RestoreID != ""
	}))
	env.AssertActivityNumberOfCalls(t, wf.ValidateArchiveActivity, 0)
	if res.Storage == nil || res.Storage.Files != 3 {
		t.Fatalf("storage %+v: want the staged count", res.Storage)
	}
	env.AssertActivityNumberOfCalls(t, wf.StageDatabaseActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.DiscardStagingActivity, 0)
	env.AssertActivityNumberOfCalls(t, wf.RollbackStorageActivity, 0)
	env.AssertActivityNumberOfCalls(t, wf.RollbackDatabaseActivity, 0)
	env.AssertActivityNumberOfCalls(t, wf.StartServicesActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.ReleaseLockActivity, 1)
	p := queryProgress(t, env)
	if p.State != wf.StateCompleted || p.Step != 7 || len(p.Completed) != 7 {
		t.Fatalf("progress %+v", p)
	}
}

func queryProgress(t *testing.T, env *testsuite.TestWorkflowEnvironment) wf.Progress {
	t.Helper()
	v, err := env.QueryWorkflow(wf.ProgressQuery)
	if err != nil {
		t.Fatal(err)
	}
	var p wf.Progress
	if err := v.Get(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRestoreDryRunTouchesNothing(t *testing.T) {
	env := restoreEnv(t)
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz", DryRun: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{wf.AcquireLockActivity, wf.RunningServicesActivity, wf.StopServicesActivity, wf.RestoreStorageActivity, wf.RestoreDatabaseActivity} {
		env.AssertActivityNumberOfCalls(t, a, 0)
	}
	// A dry run reads the archive; it stages nothing.
	env.AssertActivityNumberOfCalls(t, wf.ValidateArchiveActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.ValidateAndStageActivity, 0)
	env.AssertActivityNumberOfCalls(t, wf.DiscardStagingActivity, 0)
}

// A failure in steps 1–3 touches no data; a failure in steps 4–7 rolls back
// storage and database and starts the services again.
func TestRestoreFailureAtEachStep(t *testing.T) {
	cases := []struct {
		step             int
		fail             func(env *testsuite.TestWorkflowEnvironment)
		rollbackStorage  int
		rollbackDatabase int
		startServices    int
		stopServices     int
	}{
		{1, func(env *testsuite.TestWorkflowEnvironment) {
			env.OnActivity(wf.ValidateAndStageActivity, mock.Anything, mock.Anything).Return(wf.StagedPlan{}, temporal.NewNonRetryableApplicationError("checksum mismatch", wf.ErrTypeIntegrity, nil))
		}, 0, 0, 0, 0},
		{2, func(env *testsuite.TestWorkflowEnvironment) {
			env.OnWorkflow(wf.BackupWorkflowName, mock.Anything, mock.Anything).Return(nil, boom("disk full"))
		}, 0, 0, 0, 0},
		{3, func(env *testsuite.TestWorkflowEnvironment) {
			env.OnActivity(wf.StopServicesActivity, mock.Anything, running).Return(boom("docker said no"))
		}, 0, 0, 1, 1},
		{4, func(env *testsuite.TestWorkflowEnvironment) {
			env.OnActivity(wf.RestoreStorageActivity, mock.Anything, mock.Anything).Return(wf.StorageOutput{}, boom("extract failed"))
		}, 1, 0, 1, 1},
		{5, func(env *testsuite.TestWorkflowEnvironment) {
			env.OnActivity(wf.RestoreDatabaseActivity, mock.Anything, mock.Anything).Return(wf.DatabaseOutput{}, boom("psql failed"))
		}, 1, 1, 1, 1},
		{6, func(env *testsuite.TestWorkflowEnvironment) {
			env.OnActivity(wf.StartServicesActivity, mock.Anything, running).Return(boom("unhealthy")).Once()
			env.OnActivity(wf.StartServicesActivity, mock.Anything, running).Return(nil)
		}, 1, 1, 2, 2},
		{7, func(env *testsuite.TestWorkflowEnvironment) {
			env.OnActivity(wf.VerifyRestoreActivity, mock.Anything, wf.VerifyInput{Manifest: plan.Manifest, Services: running}).
				Return(wf.VerifyOutput{Problems: []string{"table trades has 3 rows, the backup 4"}}, nil)
			env.OnActivity(wf.VerifyRestoreActivity, mock.Anything, mock.Anything).Return(wf.VerifyOutput{}, nil)
		}, 1, 1, 2, 2},
	}
	for _, tc := range cases {
		t.Run(wf.RestoreSteps[tc.step-1], func(t *testing.T) {
			env := restoreEnv(t, tc.fail)
			env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
			err := env.GetWorkflowError()
			if err == nil {
				t.Fatal("restore succeeded")
			}
			var app *temporal.ApplicationError
			if tc.step >= 3 && (!errors.As(err, &app) || app.Type() != wf.ErrTypeRolledBack) {
				t.Fatalf("want a rolled-back error, got %v", err)
			}
			env.AssertActivityNumberOfCalls(t, wf.RollbackStorageActivity, tc.rollbackStorage)
			env.AssertActivityNumberOfCalls(t, wf.RollbackDatabaseActivity, tc.rollbackDatabase)
			env.AssertActivityNumberOfCalls(t, wf.StartServicesActivity, tc.startServices)
			env.AssertActivityNumberOfCalls(t, wf.StopServicesActivity, tc.stopServices)
			env.AssertActivityNumberOfCalls(t, wf.FinishRestoreActivity, 0)
			// Step 1 stages the files: whichever step fails, what was
			// staged is discarded once.
			env.AssertActivityNumberOfCalls(t, wf.DiscardStagingActivity, 1)
			env.AssertActivityNumberOfCalls(t, wf.ReleaseLockActivity, 1)
			env.AssertActivityCalled(t, wf.ReportOutcomeActivity, mock.Anything, mock.MatchedBy(func(o wf.Outcome) bool {
				return o.Operation == "restore" && !o.Succeeded && o.Step == wf.RestoreSteps[tc.step-1] && o.RolledBack == (tc.step >= 3) && o.Error != ""
			}))
			if tc.step >= 3 {
				p := queryProgress(t, env)
				if p.State != wf.StateRolledBack || p.Step != tc.step {
					t.Fatalf("progress %+v", p)
				}
			}
		})
	}
}

// The dump fails to load into the fresh database while the application still
// runs: step 2 fails, the staged copies are discarded, no service is touched.
func TestStagingFailureChangesNothing(t *testing.T) {
	env := restoreEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.StageDatabaseActivity, mock.Anything, mock.Anything).Return(wf.DatabaseOutput{},
			temporal.NewNonRetryableApplicationError("stage database: psql: syntax error", wf.ErrTypeDatabase, nil))
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	var app *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != wf.ErrTypeDatabase {
		t.Fatalf("want the staging error, got %v", err)
	}
	env.AssertActivityNumberOfCalls(t, wf.DiscardStagingActivity, 1)
	for _, a := range []string{wf.RunningServicesActivity, wf.StopServicesActivity, wf.StartServicesActivity,
		wf.RestoreStorageActivity, wf.RestoreDatabaseActivity, wf.RollbackStorageActivity, wf.RollbackDatabaseActivity} {
		env.AssertActivityNumberOfCalls(t, a, 0)
	}
	env.AssertActivityNumberOfCalls(t, wf.ReleaseLockActivity, 1)
}

// Cancelling while the database loads rolls everything back.
func TestRestoreCancelledMidway(t *testing.T) {
	env := restoreEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.RestoreDatabaseActivity, mock.Anything, mock.Anything).After(time.Hour).Return(wf.DatabaseOutput{Mode: "rename"}, nil)
		env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	err := env.GetWorkflowError()
	if !temporal.IsCanceledError(err) {
		t.Fatalf("want canceled, got %v", err)
	}
	env.AssertActivityNumberOfCalls(t, wf.RollbackStorageActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.RollbackDatabaseActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.StartServicesActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.FinishRestoreActivity, 0)
	env.AssertActivityNumberOfCalls(t, wf.ReleaseLockActivity, 1)
}

func TestRestoreTransientFailureIsRetried(t *testing.T) {
	env := restoreEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.RestoreStorageActivity, mock.Anything, mock.Anything).Return(wf.StorageOutput{}, errors.New("i/o timeout")).Once()
		env.OnActivity(wf.RestoreStorageActivity, mock.Anything, mock.Anything).Return(wf.StorageOutput{Paths: []string{"storage"}}, nil)
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	env.AssertActivityNumberOfCalls(t, wf.RestoreStorageActivity, 2)
	env.AssertActivityNumberOfCalls(t, wf.RollbackStorageActivity, 0)
}

func TestRestoreNonRetryableIsNotRetried(t *testing.T) {
	env := restoreEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.ValidateAndStageActivity, mock.Anything, mock.Anything).Return(wf.StagedPlan{},
			temporal.NewNonRetryableApplicationError("unsafe entry ../x", wf.ErrTypeIntegrity, nil))
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	if env.GetWorkflowError() == nil {
		t.Fatal("restore succeeded")
	}
	env.AssertActivityNumberOfCalls(t, wf.ValidateAndStageActivity, 1)
	// The partial staged copy goes; nothing else runs.
	env.AssertActivityCalled(t, wf.DiscardStagingActivity, mock.Anything, mock.MatchedBy(func(in wf.StepInput) bool { return in.RestoreID != "" }))
	for _, a := range []string{wf.StageDatabaseActivity, wf.RunningServicesActivity, wf.StopServicesActivity, wf.RestoreStorageActivity, wf.RestoreDatabaseActivity} {
		env.AssertActivityNumberOfCalls(t, a, 0)
	}
}

func TestRestoreBusyIsRefused(t *testing.T) {
	env := restoreEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.AcquireLockActivity, mock.Anything, mock.Anything).Return(wf.Grant{},
			temporal.NewNonRetryableApplicationError("another operation is running: backup workflow vulcan-backup-1", wf.ErrTypeBusy, nil))
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	var app *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != wf.ErrTypeBusy {
		t.Fatalf("want busy, got %v", err)
	}
	env.AssertActivityNumberOfCalls(t, wf.ValidateAndStageActivity, 0)
	env.AssertActivityNumberOfCalls(t, wf.ReleaseLockActivity, 0)
}

// A cleanup after a verified restore that fails is reported like any other
// failure; it touches nothing else.
func TestRestoreCleanupFailureIsReported(t *testing.T) {
	env := restoreEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.FinishRestoreActivity, mock.Anything, mock.Anything).Return(boom("permission denied"))
	})
	env.ExecuteWorkflow(wf.RestoreCleanupWorkflowName, wf.RestoreCleanupInput{StepInput: wf.StepInput{RestoreID: "20250103_000000"}})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "pre-restore copies of restore 20250103_000000") {
		t.Fatalf("want the cleanup's failure, got %v", err)
	}
	env.AssertActivityCalled(t, wf.ReportOutcomeActivity, mock.Anything, mock.MatchedBy(func(o wf.Outcome) bool {
		return o.Operation == "restore cleanup" && !o.Succeeded && strings.Contains(o.Error, "permission denied")
	}))
	for _, a := range []string{wf.RollbackStorageActivity, wf.RollbackDatabaseActivity, wf.StopServicesActivity, wf.StartServicesActivity} {
		env.AssertActivityNumberOfCalls(t, a, 0)
	}
}

// A verified restore keeps its pre-restore copies for the undo window: the
// restored database gets its statistics at once, the copies go only when
// the window has passed.
func TestRestoreCleanupKeepsTheCopiesForTheUndoWindow(t *testing.T) {
	var analyzedAt, removedAt time.Time
	var env *testsuite.TestWorkflowEnvironment
	env = restoreEnv(t, func(e *testsuite.TestWorkflowEnvironment) {
		e.OnActivity(wf.AnalyzeRestoredActivity, mock.Anything, mock.Anything).Return(func(activityCtx, wf.StepInput) error {
			analyzedAt = env.Now()
			return nil
		})
		e.OnActivity(wf.FinishRestoreActivity, mock.Anything, mock.Anything).Return(func(activityCtx, wf.StepInput) error {
			removedAt = env.Now()
			return nil
		})
	})
	start := env.Now()
	env.ExecuteWorkflow(wf.RestoreCleanupWorkflowName, wf.RestoreCleanupInput{StepInput: wf.StepInput{RestoreID: "20250103_000000"}, KeepFor: 24 * time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if analyzedAt.Sub(start) > time.Minute {
		t.Errorf("analyzed after %v, want at once", analyzedAt.Sub(start))
	}
	if removedAt.Sub(start) < 24*time.Hour {
		t.Errorf("copies removed after %v, want after the 24 h window", removedAt.Sub(start))
	}
}

// The restore hands the worker's undo window to its clean-up.
func TestRestorePassesTheUndoWindow(t *testing.T) {
	withWindow := plan
	withWindow.UndoWindow = 6 * time.Hour
	env := restoreEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.ValidateAndStageActivity, mock.Anything, mock.Anything).Return(wf.StagedPlan{Plan: withWindow, Staged: wf.StorageOutput{Files: 3}}, nil)
	})
	var got time.Duration
	env.OnWorkflow(wf.RestoreCleanupWorkflowName, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in wf.RestoreCleanupInput) error {
		got = in.KeepFor
		return nil
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if got != 6*time.Hour {
		t.Fatalf("clean-up keeps the copies for %v, want 6h", got)
	}
}

// The restore runs under the id FreeRestoreID gives once the lock is held,
// not the one its start time names, and reports it.
func TestRestoreRunsUnderTheFreeID(t *testing.T) {
	const free = "20250103_000007"
	env := restoreEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.FreeRestoreIDActivity, mock.Anything, mock.Anything).Return(free, nil)
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res wf.RestoreResult
	env.GetWorkflowResult(&res)
	if res.RestoreID != free {
		t.Fatalf("restore id %q, want %q", res.RestoreID, free)
	}
	for _, name := range []string{wf.ValidateAndStageActivity, wf.RestoreStorageActivity, wf.RestoreDatabaseActivity, wf.FinishRestoreActivity} {
		env.AssertActivityCalled(t, name, mock.Anything, mock.MatchedBy(func(in any) bool {
			switch v := in.(type) {
			case wf.StageInput:
				return v.RestoreID == free
			case wf.StepInput:
				return v.RestoreID == free
			}
			return false
		}))
	}
}
