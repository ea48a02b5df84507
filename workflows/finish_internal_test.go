package workflows

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// A cancellation that arrives once step 7 has passed (in the same workflow
// task as its result) must not keep the clean-up of the pre-restore copies
// from starting: the restore is done, and without the clean-up they would
// stay for ever.
func TestFinishStartsTheCleanupAfterACancellation(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context) (string, error) {
		ctx, cancel := workflow.WithCancel(ctx)
		cancel()
		r, err := newRestore(ctx, RestoreInput{Archive: "a"})
		if err != nil {
			return "", err
		}
		r.step(ctx, 7)
		r.finish(ctx)
		return r.res.CleanupError, nil
	}, workflow.RegisterOptions{Name: "finish"})
	env.RegisterWorkflowWithOptions(RestoreCleanupWorkflow, workflow.RegisterOptions{Name: RestoreCleanupWorkflowName})
	env.RegisterActivityWithOptions(func(StepInput) error { return nil }, activity.RegisterOptions{Name: FinishRestoreActivity})
	env.RegisterActivityWithOptions(func(Outcome) error { return nil }, activity.RegisterOptions{Name: ReportOutcomeActivity})
	env.OnActivity(FinishRestoreActivity, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(ReportOutcomeActivity, mock.Anything, mock.Anything).Return(nil)
	env.ExecuteWorkflow("finish")
	var cleanupErr string
	if err := env.GetWorkflowResult(&cleanupErr); err != nil {
		t.Fatal(err)
	}
	if cleanupErr != "" {
		t.Fatalf("clean-up not started: %s", cleanupErr)
	}
	env.AssertActivityNumberOfCalls(t, FinishRestoreActivity, 1)
}
