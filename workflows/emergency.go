package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// emergencyBackup is the child BackupWorkflow of a restore's step 2. It
// starts beside step 1 and dumps the database at once (the dump only reads,
// on CPU the extraction leaves idle), but archives, verifies and commits
// only once step 1 has passed and proceed has signalled it.
type emergencyBackup struct {
	done   workflow.ChildWorkflowFuture
	cancel workflow.CancelFunc
	result BackupResult
	ended  bool
}

func startEmergencyBackup(ctx workflow.Context) *emergencyBackup {
	info := workflow.GetInfo(ctx)
	opts := workflow.ChildWorkflowOptions{
		WorkflowID:          info.WorkflowExecution.ID + "-emergency",
		TaskQueue:           info.TaskQueueName,
		WaitForCancellation: true,
		StaticSummary:       "emergency backup before a restore",
	}
	ectx, cancel := workflow.WithCancel(workflow.WithChildOptions(ctx, opts))
	in := BackupInput{Kind: KindEmergency, LockHeld: true, AwaitProceed: true}
	return &emergencyBackup{done: workflow.ExecuteChildWorkflow(ectx, BackupWorkflowName, in), cancel: cancel}
}

// abandon stops a child that was not told to proceed and waits until it has
// removed its partial dump; a child that has ended is left alone.
func (e *emergencyBackup) abandon(dctx workflow.Context) error {
	if e.ended {
		return nil
	}
	e.cancel()
	if err := e.done.Get(dctx, nil); err != nil && !temporal.IsCanceledError(err) {
		workflow.GetLogger(dctx).Warn("the emergency backup begun beside step 1 failed", "error", err)
	}
	e.ended = true
	return nil
}

// proceed tells the child to go on and runs stage beside it; it returns
// stage's error. A child that has already failed (its dump) is not
// signalled and nothing is staged: wait returns its error.
func (e *emergencyBackup) proceed(ctx workflow.Context, stage func() workflow.Future) error {
	if e.done.IsReady() {
		if err := e.done.Get(ctx, nil); err != nil {
			return nil
		}
		return stage().Get(ctx, nil)
	}
	signalled := e.done.SignalChildWorkflow(ctx, ProceedSignal, true)
	stageErr := stage().Get(ctx, nil)
	if signalled.Get(ctx, nil) != nil && !e.done.IsReady() {
		// Only a child that has already ended can miss the signal; should
		// one still wait for it, it is stopped, not waited on for ever.
		e.cancel()
	}
	return stageErr
}

// wait returns once the child has ended, with its result in e.result.
func (e *emergencyBackup) wait(ctx workflow.Context) error {
	err := e.done.Get(ctx, &e.result)
	e.ended = true
	return err
}
