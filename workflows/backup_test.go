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

	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

func backupEnv(t *testing.T, overrides ...func(*testsuite.TestWorkflowEnvironment)) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	register(env)
	for _, o := range overrides {
		o(env)
	}
	env.OnActivity(wf.AcquireLockActivity, mock.Anything, mock.Anything).Return(wf.Grant{}, nil)
	env.OnActivity(wf.ReleaseLockActivity, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(wf.PrepareBackupActivity, mock.Anything, mock.Anything).Return(
		func(_ activityCtx, p wf.BackupPlan) (wf.BackupPlan, error) { p.ID = "20250101_020000"; return p, nil })
	env.OnActivity(wf.DumpDatabaseActivity, mock.Anything, mock.Anything).Return(wf.DumpOutput{Size: 10, Tables: 4}, nil)
	env.OnActivity(wf.ArchiveStorageActivity, mock.Anything, mock.Anything).Return(wf.ArchiveOutput{Files: 3}, nil)
	env.OnActivity(wf.VerifyBackupActivity, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(wf.CommitBackupActivity, mock.Anything, mock.Anything).Return(
		func(_ activityCtx, p wf.BackupPlan) (wf.BackupResult, error) {
			return wf.BackupResult{ID: p.ID, Kind: p.Kind}, nil
		})
	env.OnActivity(wf.ApplyRetentionActivity, mock.Anything, mock.Anything).Return(wf.RetentionOutput{Deleted: []string{"20241201_020000"}}, nil)
	env.OnActivity(wf.ListForBackupActivity, mock.Anything).Return([]string(nil), nil)
	env.OnActivity(wf.StopForBackupActivity, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(wf.StartAfterBackupActivity, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(wf.ReportOutcomeActivity, mock.Anything, mock.Anything).Return(nil)
	return env
}

func TestBackupHappyPath(t *testing.T) {
	env := backupEnv(t)
	env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{Kind: wf.KindManual})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res wf.BackupResult
	env.GetWorkflowResult(&res)
	if res.ID != "20250101_020000" || res.Kind != wf.KindManual || len(res.Deleted) != 1 {
		t.Fatalf("result %+v", res)
	}
	env.AssertActivityNumberOfCalls(t, wf.AcquireLockActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.ReleaseLockActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.ApplyRetentionActivity, 1)
	env.AssertActivityCalled(t, wf.ReportOutcomeActivity, mock.Anything, mock.MatchedBy(func(o wf.Outcome) bool {
		return o.Operation == "backup" && o.Succeeded && o.Kind == wf.KindManual && o.BackupID == "20250101_020000"
	}))
}

// The schedule starts the workflow with its recorded input; an empty kind
// means scheduled.
func TestBackupDefaultsToScheduled(t *testing.T) {
	env := backupEnv(t)
	env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{})
	var res wf.BackupResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Kind != wf.KindScheduled {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestEmergencyBackupUnderParentLock(t *testing.T) {
	env := backupEnv(t)
	env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{Kind: wf.KindEmergency, LockHeld: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	env.AssertActivityNumberOfCalls(t, wf.AcquireLockActivity, 0)
	env.AssertActivityNumberOfCalls(t, wf.ApplyRetentionActivity, 0)
	env.AssertActivityNumberOfCalls(t, wf.ReportOutcomeActivity, 0)
}

func TestBackupVerifyFailureCommitsNothing(t *testing.T) {
	env := backupEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.VerifyBackupActivity, mock.Anything, mock.Anything).Return(
			temporal.NewNonRetryableApplicationError("checksum mismatch", wf.ErrTypeIntegrity, nil))
	})
	env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{Kind: wf.KindManual})
	var app *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != wf.ErrTypeIntegrity {
		t.Fatalf("want integrity error, got %v", err)
	}
	env.AssertActivityNumberOfCalls(t, wf.VerifyBackupActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.CommitBackupActivity, 0)
	env.AssertActivityNumberOfCalls(t, wf.ReleaseLockActivity, 1)
	env.AssertActivityCalled(t, wf.ReportOutcomeActivity, mock.Anything, mock.MatchedBy(func(o wf.Outcome) bool {
		return !o.Succeeded && o.Step == "verify" && strings.Contains(o.Error, "checksum mismatch")
	}))
}

// A database that is down is retried with backoff, a bounded number of times.
func TestBackupDatabaseDownRetriesThenFails(t *testing.T) {
	env := backupEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.DumpDatabaseActivity, mock.Anything, mock.Anything).Return(wf.DumpOutput{}, errors.New("connect to PostgreSQL vulcan@db:5432/vulcan: connection refused"))
	})
	env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{Kind: wf.KindManual})
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("backup succeeded")
	}
	env.AssertActivityNumberOfCalls(t, wf.DumpDatabaseActivity, 5)
	env.AssertActivityNumberOfCalls(t, wf.VerifyBackupActivity, 0)
	env.AssertActivityNumberOfCalls(t, wf.CommitBackupActivity, 0)
}

// The archive step runs beside the dump and waits for it; when the dump
// fails the archive is cancelled. (The test environment does not wait for a
// cancelled activity; e2e/TestDatabaseDown runs the real thing.)
func TestDumpFailureCancelsTheArchive(t *testing.T) {
	archiving := make(chan struct{})
	var cancelled []string
	env := backupEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.DumpDatabaseActivity, mock.Anything, mock.Anything).Return(
			func(activityCtx, wf.BackupPlan) (wf.DumpOutput, error) {
				select { // fail once the archive is under way
				case <-archiving:
				case <-time.After(10 * time.Second):
				}
				return wf.DumpOutput{}, temporal.NewNonRetryableApplicationError("database vulcan does not exist", wf.ErrTypeBadInput, nil)
			})
		env.OnActivity(wf.ArchiveStorageActivity, mock.Anything, mock.Anything).Return(
			func(ctx activityCtx, plan wf.BackupPlan) (wf.ArchiveOutput, error) {
				close(archiving)
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Second):
				}
				return wf.ArchiveOutput{}, errors.New("stopped")
			})
		env.SetOnActivityCanceledListener(func(info *activity.Info) { cancelled = append(cancelled, info.ActivityType.Name) })
	})
	env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{Kind: wf.KindManual})
	var app *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != wf.ErrTypeBadInput {
		t.Fatalf("want the dump's error, got %v", err)
	}
	if len(cancelled) != 1 || cancelled[0] != wf.ArchiveStorageActivity {
		t.Fatalf("cancelled %v, want the archive step", cancelled)
	}
	env.AssertActivityNumberOfCalls(t, wf.VerifyBackupActivity, 0)
	env.AssertActivityNumberOfCalls(t, wf.CommitBackupActivity, 0)
}

func TestRetentionFailureIsReported(t *testing.T) {
	env := backupEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.ApplyRetentionActivity, mock.Anything, mock.Anything).Return(wf.RetentionOutput{}, boom("permission denied"))
	})
	env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{Kind: wf.KindManual})
	var res wf.BackupResult
	if err := env.GetWorkflowResult(&res); err != nil || res.RetentionError == "" {
		t.Fatalf("want the committed backup with a retention error, got %+v %v", res, err)
	}
}

func TestCleanupWorkflow(t *testing.T) {
	env := backupEnv(t)
	env.ExecuteWorkflow(wf.CleanupWorkflowName, wf.CleanupInput{Days: 3, DryRun: true})
	var out wf.RetentionOutput
	if err := env.GetWorkflowResult(&out); err != nil || len(out.Deleted) != 1 {
		t.Fatalf("%+v %v", out, err)
	}
	env.AssertActivityCalled(t, wf.ApplyRetentionActivity, mock.Anything, wf.RetentionInput{Days: 3, DryRun: true})
}

// Containers labelled for the backup are stopped for the archive step only
// and started again even when it fails.
func TestBackupStopsLabelledContainersAroundTheArchive(t *testing.T) {
	for _, archiveFails := range []bool{false, true} {
		env := backupEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
			env.OnActivity(wf.ListForBackupActivity, mock.Anything).Return([]string{"chroma"}, nil)
			if archiveFails {
				env.OnActivity(wf.ArchiveStorageActivity, mock.Anything, mock.Anything).Return(wf.ArchiveOutput{}, boom("disk full"))
			}
		})
		env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{Kind: wf.KindManual})
		if (env.GetWorkflowError() != nil) != archiveFails {
			t.Fatalf("archiveFails=%v: %v", archiveFails, env.GetWorkflowError())
		}
		env.AssertActivityCalled(t, wf.StopForBackupActivity, mock.Anything, []string{"chroma"})
		env.AssertActivityNumberOfCalls(t, wf.StartAfterBackupActivity, 1)
	}
}
