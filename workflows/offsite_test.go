package workflows_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

func stubCopyOffsite(ctx activityCtx, in wf.OffsiteInput) (wf.OffsiteResult, error) {
	return wf.OffsiteResult{Copied: []string{in.BackupID}}, nil
}

func stubCollectOffsite(ctx activityCtx, in wf.OffsiteInput) (wf.CollectResult, error) {
	return wf.CollectResult{}, nil
}

// committedForOffsite makes the commit say the backup is marked for an
// off-site copy, as a worker with VULCAN_OFFSITE_URL does.
func committedForOffsite(env *testsuite.TestWorkflowEnvironment) {
	env.OnActivity(wf.CommitBackupActivity, mock.Anything, mock.Anything).Return(
		func(_ activityCtx, p wf.BackupPlan) (wf.BackupResult, error) {
			return wf.BackupResult{ID: p.ID, Kind: p.Kind, OffsitePending: true}, nil
		})
}

// A committed backup marked for the remote starts its copy as a child that
// outlives it, before retention, and says which workflow copies it.
func TestBackupStartsItsOffsiteCopy(t *testing.T) {
	env := backupEnv(t, committedForOffsite)
	var copied []string
	env.OnActivity(wf.CopyOffsiteActivity, mock.Anything, mock.Anything).Return(
		func(_ activityCtx, in wf.OffsiteInput) (wf.OffsiteResult, error) {
			copied = append(copied, in.BackupID)
			return wf.OffsiteResult{Copied: []string{in.BackupID}}, nil
		})
	env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{Kind: wf.KindManual})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res wf.BackupResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if want := wf.OffsiteIDPrefix + "-20250101_020000"; res.OffsiteWorkflow != want {
		t.Fatalf("offsite workflow %q, want %q", res.OffsiteWorkflow, want)
	}
	if len(copied) != 1 || copied[0] != "20250101_020000" {
		t.Fatalf("copied %v", copied)
	}
	env.AssertActivityNumberOfCalls(t, wf.ApplyRetentionActivity, 1)
}

// A backup that is not marked (no off-site store, or an emergency backup)
// starts no copy.
func TestBackupWithoutOffsiteStartsNoCopy(t *testing.T) {
	env := backupEnv(t)
	env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{Kind: wf.KindManual})
	var res wf.BackupResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.OffsiteWorkflow != "" {
		t.Fatalf("offsite workflow %q started", res.OffsiteWorkflow)
	}
	env.AssertActivityNumberOfCalls(t, wf.CopyOffsiteActivity, 0)
}

// A copy that fails does not fail the backup, which is committed and
// valid; the copy's own workflow fails and is reported (and so notified).
func TestOffsiteCopyFailureIsReportedNotTheBackups(t *testing.T) {
	env := backupEnv(t, committedForOffsite)
	env.OnActivity(wf.CopyOffsiteActivity, mock.Anything, mock.Anything).Return(wf.OffsiteResult{},
		temporal.NewNonRetryableApplicationError("bucket vulcan: access denied", wf.ErrTypeOffsite, nil))
	env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{Kind: wf.KindManual})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("the backup failed with its copy: %v", err)
	}
	env.AssertActivityCalled(t, wf.ReportOutcomeActivity, mock.Anything, mock.MatchedBy(func(o wf.Outcome) bool {
		return o.Operation == "offsite" && !o.Succeeded && o.BackupID == "20250101_020000" && o.Error != ""
	}))
	env.AssertActivityCalled(t, wf.ReportOutcomeActivity, mock.Anything, mock.MatchedBy(func(o wf.Outcome) bool {
		return o.Operation == "backup" && o.Succeeded
	}))
}

func TestOffsiteCopyWorkflowSucceeds(t *testing.T) {
	env := backupEnv(t)
	env.OnActivity(wf.CopyOffsiteActivity, mock.Anything, mock.Anything).Return(
		wf.OffsiteResult{Copied: []string{"20250101_020000"}, Objects: 5, Uploaded: 2}, nil)
	env.OnActivity(wf.CollectOffsiteActivity, mock.Anything, mock.Anything).Return(wf.CollectResult{Removed: 3}, nil)
	env.ExecuteWorkflow(wf.OffsiteCopyWorkflowName, wf.OffsiteInput{BackupID: "20250101_020000"})
	var res wf.OffsiteResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 2 || len(res.Copied) != 1 || res.Collect == nil || res.Collect.Removed != 3 {
		t.Fatalf("result %+v", res)
	}
	env.AssertActivityNumberOfCalls(t, wf.CollectOffsiteActivity, 1)
	env.AssertActivityCalled(t, wf.ReportOutcomeActivity, mock.Anything, mock.MatchedBy(func(o wf.Outcome) bool {
		return o.Operation == "offsite" && o.Succeeded
	}))
}

// A copy that fails does not collect: what it did not finish is not
// garbage, and the collection waits for a copy that completes.
func TestOffsiteCopyFailureSkipsTheCollection(t *testing.T) {
	env := backupEnv(t)
	env.OnActivity(wf.CopyOffsiteActivity, mock.Anything, mock.Anything).Return(wf.OffsiteResult{},
		temporal.NewNonRetryableApplicationError("bucket vulcan: access denied", wf.ErrTypeOffsite, nil))
	env.OnActivity(wf.CollectOffsiteActivity, mock.Anything, mock.Anything).Return(wf.CollectResult{}, nil)
	env.ExecuteWorkflow(wf.OffsiteCopyWorkflowName, wf.OffsiteInput{BackupID: "20250101_020000"})
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("the failed copy succeeded")
	}
	env.AssertActivityNumberOfCalls(t, wf.CollectOffsiteActivity, 0)
}

// The copy has completed when the collection fails: the workflow fails
// (and notifies), saying the backup is copied.
func TestOffsiteCollectionFailureSaysTheCopyIsDone(t *testing.T) {
	env := backupEnv(t)
	env.OnActivity(wf.CollectOffsiteActivity, mock.Anything, mock.Anything).Return(wf.CollectResult{},
		temporal.NewNonRetryableApplicationError("list data/: connection refused", wf.ErrTypeOffsite, nil))
	env.ExecuteWorkflow(wf.OffsiteCopyWorkflowName, wf.OffsiteInput{BackupID: "20250101_020000"})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "is copied") {
		t.Fatalf("collection failure: %v", err)
	}
	env.AssertActivityCalled(t, wf.ReportOutcomeActivity, mock.Anything, mock.MatchedBy(func(o wf.Outcome) bool {
		return o.Operation == "offsite" && !o.Succeeded && o.Step == "collect"
	}))
}
