package workflows_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

// timeline records when each activity started and ended, on the test
// environment's clock.
type timeline struct {
	mu             sync.Mutex
	env            *testsuite.TestWorkflowEnvironment
	started, ended map[string][]time.Time
	cancelled      []string
}

func watch(env *testsuite.TestWorkflowEnvironment) *timeline {
	tl := &timeline{env: env, started: map[string][]time.Time{}, ended: map[string][]time.Time{}}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		tl.started[info.ActivityType.Name] = append(tl.started[info.ActivityType.Name], env.Now())
	})
	env.SetOnActivityCompletedListener(func(info *activity.Info, _ converter.EncodedValue, _ error) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		tl.ended[info.ActivityType.Name] = append(tl.ended[info.ActivityType.Name], env.Now())
	})
	env.SetOnActivityCanceledListener(func(info *activity.Info) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		tl.cancelled = append(tl.cancelled, info.ActivityType.Name)
	})
	return tl
}

// first returns when the first call of activity name started or ended.
func (tl *timeline) first(t *testing.T, m map[string][]time.Time, name string) time.Time {
	t.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(m[name]) == 0 {
		t.Fatalf("%s: no such event (started %v, ended %v)", name, tl.started, tl.ended)
	}
	return m[name][0]
}

// earlyEnv is restoreEnv with the real BackupWorkflow as the emergency child
// (its activities mocked as in backupEnv): validation takes 20 s, the dump
// 5 s (mocks that outlast the heartbeat timeout would time out).
func earlyEnv(t *testing.T, overrides ...func(*testsuite.TestWorkflowEnvironment)) (*testsuite.TestWorkflowEnvironment, *timeline) {
	var tl *timeline
	env := newRestoreEnv(t, false, append(overrides, func(env *testsuite.TestWorkflowEnvironment) {
		tl = watch(env)
		env.OnActivity(wf.ValidateAndStageActivity, mock.Anything, mock.Anything).After(20*time.Second).
			Return(wf.StagedPlan{Plan: plan, Staged: wf.StorageOutput{Paths: []string{"storage"}, Files: 3}}, nil)
		env.OnActivity(wf.PrepareBackupActivity, mock.Anything, mock.Anything).Return(
			func(_ activityCtx, p wf.BackupPlan) (wf.BackupPlan, error) { p.ID = "20250102_000000"; return p, nil })
		env.OnActivity(wf.DumpDatabaseActivity, mock.Anything, mock.Anything).After(5*time.Second).Return(wf.DumpOutput{Size: 10, Tables: 4}, nil)
		env.OnActivity(wf.ArchiveStorageActivity, mock.Anything, mock.Anything).Return(wf.ArchiveOutput{Files: 3}, nil)
		env.OnActivity(wf.VerifyBackupActivity, mock.Anything, mock.Anything).Return(nil)
		env.OnActivity(wf.CommitBackupActivity, mock.Anything, mock.Anything).Return(
			func(_ activityCtx, p wf.BackupPlan) (wf.BackupResult, error) {
				return wf.BackupResult{ID: p.ID, Kind: p.Kind, Manifest: "backups/e.json", Database: true}, nil
			})
		env.OnActivity(wf.ListForBackupActivity, mock.Anything).Return([]string(nil), nil)
	})...)
	return env, tl
}

// The emergency backup's dump runs beside step 1; its files are archived
// only once step 1 has passed, and the restore goes on once it is committed.
func TestEmergencyDumpRunsBesideValidation(t *testing.T) {
	env, tl := earlyEnv(t)
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res wf.RestoreResult
	env.GetWorkflowResult(&res)
	if res.EmergencyBackup == nil || res.EmergencyBackup.ID != "20250102_000000" || res.EmergencyBackup.Kind != wf.KindEmergency {
		t.Fatalf("emergency backup %+v", res.EmergencyBackup)
	}
	validated := tl.first(t, tl.ended, wf.ValidateAndStageActivity)
	if d := tl.first(t, tl.started, wf.DumpDatabaseActivity); !d.Before(validated) {
		t.Fatalf("dump started at %v, validation ended at %v: want the dump beside step 1", d, validated)
	}
	if a := tl.first(t, tl.started, wf.ArchiveStorageActivity); a.Before(validated) {
		t.Fatalf("archive started at %v, before validation ended at %v", a, validated)
	}
	if c, s := tl.first(t, tl.ended, wf.CommitBackupActivity), tl.first(t, tl.started, wf.StopServicesActivity); !c.Before(s) && !c.Equal(s) {
		t.Fatalf("services stopped at %v, before the emergency backup was committed at %v", s, c)
	}
	env.AssertActivityNumberOfCalls(t, wf.PrepareBackupActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.DumpDatabaseActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.StageDatabaseActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.ApplyRetentionActivity, 0)
}

// A bad archive fails step 1: the emergency backup begun beside it is
// stopped, commits nothing, and its partial files are cleared; nothing is
// staged or stopped. Whether the dump had finished or was still running.
func TestBadArchiveAbandonsTheEmergencyBackup(t *testing.T) {
	for _, dump := range []time.Duration{5 * time.Second, 28 * time.Second} {
		t.Run(dump.String(), func(t *testing.T) {
			env, tl := earlyEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
				env.OnActivity(wf.ValidateAndStageActivity, mock.Anything, mock.Anything).After(20*time.Second).Return(wf.StagedPlan{},
					temporal.NewNonRetryableApplicationError("entry storage/a.log: checksum mismatch", wf.ErrTypeIntegrity, nil))
				env.OnActivity(wf.DumpDatabaseActivity, mock.Anything, mock.Anything).After(dump).Return(wf.DumpOutput{Size: 10, Tables: 4}, nil)
			})
			env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
			var app *temporal.ApplicationError
			if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != wf.ErrTypeIntegrity {
				t.Fatalf("want step 1's integrity error, got %v", err)
			}
			for _, a := range []string{wf.ArchiveStorageActivity, wf.VerifyBackupActivity, wf.CommitBackupActivity,
				wf.StageDatabaseActivity, wf.RunningServicesActivity, wf.StopServicesActivity} {
				env.AssertActivityNumberOfCalls(t, a, 0)
			}
			// The second PrepareBackup clears the cancelled attempt's files.
			env.AssertActivityNumberOfCalls(t, wf.PrepareBackupActivity, 2)
			env.AssertActivityNumberOfCalls(t, wf.DiscardStagingActivity, 1)
			env.AssertActivityNumberOfCalls(t, wf.ReleaseLockActivity, 1)
			tl.mu.Lock()
			defer tl.mu.Unlock()
			if dump > 20*time.Second && (len(tl.cancelled) != 1 || tl.cancelled[0] != wf.DumpDatabaseActivity) {
				t.Fatalf("cancelled %v, want the running dump", tl.cancelled)
			}
		})
	}
}

// A dump that fails beside step 1 fails the restore at step 2, before the
// database is staged; the staged files are discarded.
func TestEmergencyDumpFailureBesideValidation(t *testing.T) {
	env, _ := earlyEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.DumpDatabaseActivity, mock.Anything, mock.Anything).After(5*time.Second).Return(wf.DumpOutput{},
			temporal.NewNonRetryableApplicationError("database vulcan does not exist", wf.ErrTypeBadInput, nil))
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	var app *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != wf.ErrTypeBadInput {
		t.Fatalf("want the dump's error, got %v", err)
	}
	p := queryProgress(t, env)
	if p.State != wf.StateFailed || p.Step != 2 {
		t.Fatalf("progress %+v: want failed at step 2", p)
	}
	for _, a := range []string{wf.ArchiveStorageActivity, wf.CommitBackupActivity, wf.StageDatabaseActivity,
		wf.RunningServicesActivity, wf.StopServicesActivity} {
		env.AssertActivityNumberOfCalls(t, a, 0)
	}
	env.AssertActivityNumberOfCalls(t, wf.DiscardStagingActivity, 1)
}

// Cancelling the restore during step 1 cancels the emergency backup too:
// nothing committed, its files cleared.
func TestRestoreCancelledDuringValidation(t *testing.T) {
	env, _ := earlyEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Second)
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	if err := env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		t.Fatalf("want canceled, got %v", err)
	}
	for _, a := range []string{wf.ArchiveStorageActivity, wf.CommitBackupActivity, wf.StopServicesActivity} {
		env.AssertActivityNumberOfCalls(t, a, 0)
	}
	env.AssertActivityNumberOfCalls(t, wf.PrepareBackupActivity, 2)
	env.AssertActivityNumberOfCalls(t, wf.ReleaseLockActivity, 1)
}
