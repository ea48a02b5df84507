package workflows

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"
)

// OffsiteCopyWorkflow copies backup in.BackupID to the off-site store, and
// every earlier backup still marked pending (a copy that failed or was cut
// short), oldest first; then it applies the retention policy to the store
// and removes the objects no remaining backup refers to. The backup that starts it has committed and let go
// of nothing it needs: the copy runs without the operation lock, for as long
// as the upload takes, and retention keeps every backup still marked. A
// store that refuses or does not answer is retried, pending, for the retry
// window; the local backup is valid either way, and a failure is notified.
func OffsiteCopyWorkflow(ctx workflow.Context, in OffsiteInput) (_ *OffsiteResult, err error) {
	prog := &Progress{Operation: "offsite", Steps: 2, Step: 1, StepName: "copy", State: StateRunning, BackupID: in.BackupID}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return *prog, nil }); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			prog.State, prog.Message = StateFailed, err.Error()
		} else {
			prog.State = StateCompleted
		}
		report(ctx, Outcome{Operation: "offsite"}, err, prog)
	}()
	ctx = withRetryWindow(ctx, in.RetryWindow)
	var res OffsiteResult
	summary := fmt.Sprintf("offsite 1/2: copy backup %s (and any earlier still pending)", in.BackupID)
	if err := call(ctx, CopyOffsiteActivity, summary, in).Get(ctx, &res); err != nil {
		return nil, wrap("off-site copy of backup "+in.BackupID, err)
	}
	prog.Completed = append(prog.Completed, "copy")
	prog.Step, prog.StepName = 2, "collect"
	var col CollectResult
	if err := call(ctx, CollectOffsiteActivity, "offsite 2/2: remote retention and garbage collection", in).Get(ctx, &col); err != nil {
		return &res, wrap("backup "+in.BackupID+" is copied; the off-site retention and garbage collection failed", err)
	}
	prog.Completed = append(prog.Completed, "collect")
	res.Collect = &col
	return &res, nil
}

// startOffsite starts the off-site copy of backup id as a child that
// outlives its parent, and returns its workflow id once it runs. A copy
// that cannot be started is logged and left to the next backup, which
// copies every backup still marked.
func startOffsite(ctx workflow.Context, id string) string {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            OffsiteIDPrefix + "-" + id,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:         "off-site copy of backup " + id,
	})
	f := workflow.ExecuteChildWorkflow(cctx, OffsiteCopyWorkflowName, OffsiteInput{BackupID: id, RetryWindow: retryWindow(ctx)})
	var exec workflow.Execution
	if err := f.GetChildWorkflowExecution().Get(ctx, &exec); err != nil {
		workflow.GetLogger(ctx).Warn("the off-site copy did not start; the next backup copies this one too", "backup", id, "error", err)
		return ""
	}
	return exec.ID
}
