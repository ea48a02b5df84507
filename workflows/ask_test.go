package workflows_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

// asks is a worker that waits for an operator's decision (ten minutes).
var asks = wf.Grant{OnFailure: wf.OnFailureAsk, DecisionTimeout: 10 * time.Minute}

func granting(g wf.Grant) func(*testsuite.TestWorkflowEnvironment) {
	return func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.AcquireLockActivity, mock.Anything, mock.Anything).Return(g, nil)
	}
}

// A restore whose services will not start waits for a decision with the
// error and the choices in its progress and current details, notifies, and
// retry runs the step again: the restore completes with no rollback.
func TestFailedStepWaitsAndRetryCompletes(t *testing.T) {
	var during wf.Progress
	env := restoreEnv(t, granting(asks), failAtStart, func(env *testsuite.TestWorkflowEnvironment) {
		env.RegisterDelayedCallback(func() {
			during = queryProgress(t, env)
			decide(t, env, wf.DecisionRetry)
		}, time.Minute)
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("after retry: %v", err)
	}
	if during.State != wf.StateAwaiting || during.Step != 6 || !strings.Contains(during.Message, "unhealthy") {
		t.Fatalf("progress while waiting: %+v", during)
	}
	env.AssertActivityNumberOfCalls(t, wf.StartServicesActivity, 2)
	env.AssertActivityNumberOfCalls(t, wf.RollbackStorageActivity, 0)
	env.AssertActivityCalled(t, wf.ReportOutcomeActivity, mock.Anything, mock.MatchedBy(func(o wf.Outcome) bool {
		return o.Awaiting && o.Step == "start services" && strings.Contains(o.Error, "unhealthy")
	}))
}

// With no decision by the deadline a restore rolls back; `rollback` rolls
// it back at once; a decision when nothing waits is refused.
func TestUndecidedStepRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		decide func(*testing.T, *testsuite.TestWorkflowEnvironment)
		before time.Duration
	}{
		{"deadline", nil, 0},
		{"rollback", func(t *testing.T, env *testsuite.TestWorkflowEnvironment) { decide(t, env, wf.DecisionRollback) }, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var refused error
			// The early decision is sent while step 4 runs, which waits for
			// it: sent by the clock alone it could arrive once the restore
			// already waited, and be accepted.
			early := make(chan struct{})
			env := restoreEnv(t, granting(asks), func(env *testsuite.TestWorkflowEnvironment) {
				env.OnActivity(wf.StartServicesActivity, mock.Anything, running).Return(boom("unhealthy")).Times(1)
				env.OnActivity(wf.RestoreStorageActivity, mock.Anything, mock.Anything).Return(func(activityCtx, wf.StepInput) (wf.StorageOutput, error) {
					select {
					case <-early:
					case <-time.After(10 * time.Second):
						t.Error("the early decision was never sent")
					}
					return wf.StorageOutput{Paths: []string{"storage"}, Files: 3}, nil
				}).Times(1)
				env.RegisterDelayedCallback(func() {
					env.UpdateWorkflow(wf.DecideName, "", &testsuite.TestUpdateCallback{
						OnAccept: func() { t.Error("a decision before anything waits was accepted") }, OnReject: func(err error) { refused = err },
						OnComplete: func(any, error) {},
					}, wf.Decision{Action: wf.DecisionRetry})
					close(early)
				}, time.Millisecond)
				if tc.decide != nil {
					env.RegisterDelayedCallback(func() { tc.decide(t, env) }, tc.before)
				}
			})
			start := env.Now()
			env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
			var app *temporal.ApplicationError
			if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != wf.ErrTypeRolledBack {
				t.Fatalf("want rolled back, got %v", err)
			}
			waited := env.Now().Sub(start)
			if tc.decide == nil && waited < asks.DecisionTimeout {
				t.Errorf("rolled back after %v, before the decision time-out", waited)
			}
			if tc.decide != nil && waited >= asks.DecisionTimeout {
				t.Errorf("rolled back after %v: the decision was not taken at once", waited)
			}
			if refused == nil || !strings.Contains(refused.Error(), "no decision is awaited") {
				t.Errorf("early decision: %v", refused)
			}
			env.AssertActivityNumberOfCalls(t, wf.RollbackStorageActivity, 1)
		})
	}
}

// A backup that fails for good waits too: retry runs it again from the
// start and it completes as the same workflow; with no decision it fails
// at the deadline.
func TestFailedBackupWaitsForADecision(t *testing.T) {
	env := backupEnv(t, granting(asks), func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.DumpDatabaseActivity, mock.Anything, mock.Anything).Return(wf.DumpOutput{}, boom("database unreachable")).Once()
		env.RegisterDelayedCallback(func() {
			if p := queryProgress(t, env); p.State != wf.StateAwaiting {
				t.Errorf("progress while waiting: %+v", p)
			}
			decide(t, env, wf.DecisionRetry)
		}, time.Minute)
	})
	env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{Kind: wf.KindManual})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("after retry: %v", err)
	}
	env.AssertActivityNumberOfCalls(t, wf.PrepareBackupActivity, 2)
	env.AssertActivityNumberOfCalls(t, wf.CommitBackupActivity, 1)
	if p := queryProgress(t, env); p.State != wf.StateCompleted || len(p.Completed) != 7 {
		t.Fatalf("final progress %+v", p)
	}

	env = backupEnv(t, granting(asks), func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.DumpDatabaseActivity, mock.Anything, mock.Anything).Return(wf.DumpOutput{}, boom("database unreachable"))
	})
	env.ExecuteWorkflow(wf.BackupWorkflowName, wf.BackupInput{Kind: wf.KindManual})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "database unreachable") {
		t.Fatalf("undecided: %v", err)
	}
	env.AssertActivityNumberOfCalls(t, wf.CommitBackupActivity, 0)
}

// A fixable failure is retried for the retry window, and for a sixth of it
// once a restore has stopped the application.
func TestRetryWindowSetsTheAttempts(t *testing.T) {
	g := wf.Grant{OnFailure: wf.OnFailureRollback, RetryWindow: time.Hour}
	calls := 0
	env := restoreEnv(t, granting(g), func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.StartServicesActivity, mock.Anything, running).Return(func(activityCtx, []string) error {
			calls++
			return errors.New("container did not become healthy")
		})
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("want the restore rolled back")
	}
	// The controller's backoff is capped at 30 s: ten minutes of window is
	// about 26 attempts in step 6, then the rollback's own start (5).
	if calls < 25 || calls > 35 {
		t.Fatalf("StartServices tried %d times, want about ten minutes' worth and the rollback's (25-35)", calls)
	}
}
