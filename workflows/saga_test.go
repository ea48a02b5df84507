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

// failAtStart makes step 6 fail, which starts a rollback.
func failAtStart(env *testsuite.TestWorkflowEnvironment) {
	env.OnActivity(wf.StartServicesActivity, mock.Anything, running).Return(boom("unhealthy")).Once()
}

func isLockMark(state string) any {
	return mock.MatchedBy(func(r wf.LockRequest) bool { return r.State == state })
}

// decide answers a waiting restore through the Update, failing the test if
// the Update is refused.
func decide(t *testing.T, env *testsuite.TestWorkflowEnvironment, action string) {
	t.Helper()
	env.UpdateWorkflow(wf.DecideName, "", &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   func(err error) { t.Errorf("decide %s refused: %v", action, err) },
		OnComplete: func(any, error) {},
	}, wf.Decision{Action: action})
}

// A rollback whose database undo fails is not announced as a rollback: the
// restore keeps the lock (marked, so it is not taken over), reports the
// incomplete rollback, and waits; retry resumes the rollback where it
// stopped, and only then is the lock released.
func TestIncompleteRollbackKeepsTheLockAndWaits(t *testing.T) {
	var during wf.Progress
	var releasedWhileWaiting, decided bool
	env := restoreEnv(t, failAtStart, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.RollbackDatabaseActivity, mock.Anything, mock.Anything).Return(wf.RollbackOutput{}, boom("permission denied to rename database")).Once()
		env.OnActivity(wf.ReleaseLockActivity, mock.Anything, mock.Anything).Return(func(activityCtx, wf.LockRequest) error {
			releasedWhileWaiting = releasedWhileWaiting || !decided
			return nil
		})
		env.RegisterDelayedCallback(func() {
			during = queryProgress(t, env)
			decided = true
			decide(t, env, wf.DecisionRetry)
		}, time.Hour)
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})

	if during.State != wf.StateRollbackIncomplete || !strings.Contains(during.Message, "ROLLBACK INCOMPLETE") ||
		!strings.Contains(during.Message, "put the database back") {
		t.Fatalf("progress while waiting: %+v", during)
	}
	if releasedWhileWaiting {
		t.Error("the lock was released while the rollback was incomplete")
	}
	env.AssertActivityCalled(t, wf.AcquireLockActivity, mock.Anything, isLockMark(wf.StateRollbackIncomplete))
	env.AssertActivityCalled(t, wf.ReportOutcomeActivity, mock.Anything, mock.MatchedBy(func(o wf.Outcome) bool {
		return o.RollbackIncomplete && !o.RolledBack && strings.Contains(o.Error, "ROLLBACK INCOMPLETE")
	}))
	// Retried: the database undo ran again, then the rest of the chain.
	var app *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != wf.ErrTypeRolledBack {
		t.Fatalf("after retry: want rolled back, got %v", err)
	}
	env.AssertActivityNumberOfCalls(t, wf.RollbackDatabaseActivity, 2)
	env.AssertActivityNumberOfCalls(t, wf.RollbackStorageActivity, 1)
	env.AssertActivityNumberOfCalls(t, wf.ReleaseLockActivity, 1)
	if p := queryProgress(t, env); p.State != wf.StateRolledBack {
		t.Fatalf("final progress %+v", p)
	}
}

// Aborting an incomplete rollback ends the restore with its own error type,
// never the "rolled back" one.
func TestAbortedIncompleteRollbackSaysSo(t *testing.T) {
	env := restoreEnv(t, failAtStart, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.RollbackStorageActivity, mock.Anything, mock.Anything).Return(wf.RollbackOutput{}, boom("rename storage: device busy"))
		env.RegisterDelayedCallback(func() { decide(t, env, wf.DecisionAbort) }, time.Hour)
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	var app *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != wf.ErrTypeRollbackIncomplete {
		t.Fatalf("want a rollback-incomplete error, got %v", err)
	}
	if !strings.HasPrefix(app.Message(), "ROLLBACK INCOMPLETE") || !strings.Contains(app.Message(), "storage.pre-restore-") {
		t.Fatalf("message does not say what is where: %s", app.Message())
	}
	// The chain stopped at the storage: the services were not started on
	// a mixed state.
	env.AssertActivityNumberOfCalls(t, wf.StartServicesActivity, 1)
	env.AssertActivityCalled(t, wf.ReportOutcomeActivity, mock.Anything, mock.MatchedBy(func(o wf.Outcome) bool {
		return o.RollbackIncomplete && !o.Succeeded
	}))
	if p := queryProgress(t, env); p.State != wf.StateRollbackIncomplete {
		t.Fatalf("progress %+v", p)
	}
}

// When the services cannot be stopped for the rollback, no data is renamed
// under the running application.
func TestRollbackStopsWhenServicesCannotBeStopped(t *testing.T) {
	env := restoreEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.VerifyRestoreActivity, mock.Anything, mock.Anything).Return(wf.VerifyOutput{Problems: []string{"rows differ"}}, nil).Once()
		env.OnActivity(wf.StopServicesActivity, mock.Anything, running).Return(nil).Once()
		env.OnActivity(wf.StopServicesActivity, mock.Anything, running).Return(boom("docker: permission denied"))
		env.RegisterDelayedCallback(func() { decide(t, env, wf.DecisionAbort) }, time.Hour)
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	var app *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != wf.ErrTypeRollbackIncomplete {
		t.Fatalf("want a rollback-incomplete error, got %v", err)
	}
	env.AssertActivityNumberOfCalls(t, wf.RollbackStorageActivity, 0)
	env.AssertActivityNumberOfCalls(t, wf.RollbackDatabaseActivity, 0)
}

// The operator reads one sentence: the failed restore's message carries the
// step and the cause, not the chain of wrapped activity errors.
func TestRolledBackMessageIsOneSentence(t *testing.T) {
	env := restoreEnv(t, failAtStart)
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	var app *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != wf.ErrTypeRolledBack {
		t.Fatalf("want rolled back, got %v", err)
	}
	msg := app.Message()
	if !strings.Contains(msg, "step 6 (start services)") || !strings.Contains(msg, "unhealthy") || strings.Contains(msg, "type:") {
		t.Fatalf("message %q", msg)
	}
}

// A decision sent while nothing waits for one is refused by the Update's
// validator and changes nothing.
func TestDecisionRefusedWhenNothingWaits(t *testing.T) {
	var refused error
	env := restoreEnv(t, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(wf.RestoreStorageActivity, mock.Anything, mock.Anything).After(10*time.Minute).Return(wf.StorageOutput{Files: 3}, nil)
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(wf.DecideName, "", &testsuite.TestUpdateCallback{
				OnAccept: func() {}, OnComplete: func(any, error) {},
				OnReject: func(err error) { refused = err },
			}, wf.Decision{Action: wf.DecisionRollback})
		}, time.Minute)
	})
	env.ExecuteWorkflow(wf.RestoreWorkflowName, wf.RestoreInput{Archive: "a.tar.gz"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if refused == nil || !strings.Contains(refused.Error(), "no decision is awaited") {
		t.Fatalf("decision while step 4 runs: refused %v", refused)
	}
}
