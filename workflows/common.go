package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// opLock is the operation lock as a workflow holds it, with the settings
// the worker granted along with it.
type opLock struct {
	req   LockRequest
	grant Grant
}

// takeLock takes the operation lock for this workflow. The lock names the
// workflow id, so a Reset (a new run of the same workflow) still holds it.
func takeLock(ctx workflow.Context, operation string) (*opLock, error) {
	info := workflow.GetInfo(ctx)
	l := &opLock{req: LockRequest{Operation: operation, WorkflowID: info.WorkflowExecution.ID}}
	if err := call(ctx, AcquireLockActivity, operation+": take the operation lock", l.req).Get(ctx, &l.grant); err != nil {
		return nil, err
	}
	return l, nil
}

// mark records state in the lock file; a lock marked rollback-incomplete is
// never taken over, even once its workflow has ended.
func (l *opLock) mark(ctx workflow.Context, state string) error {
	req := l.req
	req.State = state
	return call(ctx, AcquireLockActivity, l.req.Operation+": mark the lock "+state, req).Get(ctx, nil)
}

// release drops the lock, on a disconnected context so that a cancelled
// workflow still lets go.
func (l *opLock) release(ctx workflow.Context) {
	dctx := disconnected(ctx)
	if err := call(dctx, ReleaseLockActivity, l.req.Operation+": release the operation lock", l.req).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("releasing the operation lock failed", "error", err)
	}
}

// report hands the outcome of a finished workflow to the ReportOutcome
// activity (metrics, notifications), on a disconnected context so that a
// cancelled workflow still reports. A report that cannot be delivered does
// not change the workflow's result.
func report(ctx workflow.Context, o Outcome, err error, prog *Progress) {
	info := workflow.GetInfo(ctx)
	o.WorkflowID, o.RunID = info.WorkflowExecution.ID, info.WorkflowExecution.RunID
	o.DurationS = workflow.Now(ctx).Sub(info.WorkflowStartTime).Seconds()
	o.BackupID = prog.BackupID
	o.Succeeded = err == nil
	if err != nil {
		o.Error = rootMessage(err)
		o.Step = prog.StepName
		o.RolledBack = prog.State == StateRolledBack
		o.RollbackIncomplete = prog.State == StateRollbackIncomplete
		o.Awaiting = prog.State == StateAwaiting
	}
	o.Event = fmt.Sprintf("%s/%d", prog.State, prog.Step)
	dctx := disconnected(ctx)
	if rerr := call(dctx, ReportOutcomeActivity, o.Operation+": report the outcome", o).Get(dctx, nil); rerr != nil {
		workflow.GetLogger(ctx).Warn("reporting the outcome failed", "error", rerr)
	}
}

// wrap adds context to a step's error while keeping its application error
// type on the outside, so the starter can tell a bad archive from a busy lock
// without digging. Cancellation passes through unchanged.
func wrap(msg string, err error) error {
	if temporal.IsCanceledError(err) {
		return err
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.Type() != "" {
		return temporal.NewNonRetryableApplicationError(msg+": "+app.Message(), app.Type(), err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// rootMessage is the message of the outermost application error in err's
// chain: the sentence that says what went wrong, without the chain of
// activity and type clauses around it.
func rootMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	if temporal.IsCanceledError(err) {
		return "cancelled"
	}
	return err.Error()
}
