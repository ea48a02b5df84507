package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// nonRetryable lists the error types no retry can fix.
var nonRetryable = []string{ErrTypeIntegrity, ErrTypeBadInput, ErrTypeBusy, ErrTypeNoSpace, ErrTypeVerify}

// quick is for short bookkeeping activities.
func quick(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			MaximumAttempts: 5, NonRetryableErrorTypes: nonRetryable,
		},
	})
}

// long is for activities that move data: they heartbeat, so a dead worker is
// noticed within HeartbeatTimeout and the step is retried elsewhere.
func long(ctx workflow.Context, attempts int32) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 6 * time.Hour,
		HeartbeatTimeout:    HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			MaximumAttempts: attempts, NonRetryableErrorTypes: nonRetryable,
		},
	})
}

// waitForCancel makes a cancelled activity's future resolve only once the
// activity has stopped, so nothing is still writing when the workflow ends.
func waitForCancel(ctx workflow.Context) workflow.Context {
	o := workflow.GetActivityOptions(ctx)
	o.WaitForCancellation = true
	return workflow.WithActivityOptions(ctx, o)
}

// database is for steps that talk to PostgreSQL: a server that is down is
// retried with backoff for about a minute, then the step fails.
func database(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 6 * time.Hour,
		HeartbeatTimeout:    HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			MaximumAttempts: 5, NonRetryableErrorTypes: nonRetryable,
		},
	})
}

// backupSteps names the steps of a backup, for progress.
var backupSteps = []string{"lock", "prepare", "dump database", "archive", "verify", "commit", "retention"}

// BackupWorkflow takes one verified backup: dump the database in a snapshot,
// archive the paths and the dump, verify the archive by reading it back
// against its manifest, commit (rename into place, manifest last), and apply
// retention. It holds the operation lock unless its parent restore does.
func BackupWorkflow(ctx workflow.Context, in BackupInput) (_ *BackupResult, err error) {
	if in.Kind == "" {
		in.Kind = KindScheduled
	}
	info := workflow.GetInfo(ctx)
	prog := &Progress{Operation: "backup", Steps: len(backupSteps), State: StateRunning}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return *prog, nil }); err != nil {
		return nil, err
	}
	if !in.LockHeld { // an emergency backup is reported by its restore
		defer func() { report(ctx, Outcome{Operation: "backup", Kind: in.Kind}, err, prog) }()
	}
	step := func(i int) {
		if prog.Step > 0 {
			prog.Completed = append(prog.Completed, prog.StepName)
		}
		prog.Step, prog.StepName = i+1, backupSteps[i]
	}
	fail := func(err error) (*BackupResult, error) {
		prog.State, prog.Message = StateFailed, err.Error()
		return nil, err
	}

	if !in.LockHeld {
		step(0)
		release, err := holdLock(ctx, "backup")
		if err != nil {
			return fail(err)
		}
		defer release()
	}

	step(1)
	var plan BackupPlan
	req := BackupPlan{Kind: in.Kind, WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, StartedAt: workflow.Now(ctx).UTC()}
	if err := workflow.ExecuteActivity(quick(ctx), PrepareBackupActivity, req).Get(ctx, &plan); err != nil {
		return fail(wrap("prepare backup", err))
	}
	prog.BackupID = plan.ID

	step(2)
	// The dump runs beside the archive step, which appends it at the end
	// of the archive once it is complete. Before this version the dump ran
	// first, on its own.
	var dump DumpOutput
	dctx := database(ctx)
	if in.AwaitProceed {
		// Cancelled while it waits, the backup removes its partial dump:
		// the dump must have stopped writing first.
		dctx = waitForCancel(dctx)
	}
	dumped := workflow.ExecuteActivity(dctx, DumpDatabaseActivity, plan)
	beside := workflow.GetVersion(ctx, "dump-beside-archive", workflow.DefaultVersion, 1) == 1
	if !beside {
		if err := dumped.Get(ctx, &dump); err != nil {
			return fail(wrap("dump database", err))
		}
		if dump.Skipped {
			prog.Message = dump.Note
		}
	}
	plan.DumpBeside = beside
	if in.AwaitProceed {
		if err := awaitProceed(ctx, dumped); err != nil {
			if temporal.IsCanceledError(err) {
				discardAttempt(ctx)
				return fail(err)
			}
			return fail(wrap("dump database", err))
		}
	}

	step(3)
	// Stores that are unsafe to copy live (label vulcan.stop-during-backup)
	// are stopped for the archive step only, and started again whatever
	// happens. Added after the first release, hence the version marker.
	resume := func() {}
	if workflow.GetVersion(ctx, "stop-during-backup", workflow.DefaultVersion, 1) == 1 {
		var paused []string
		if err := workflow.ExecuteActivity(quick(ctx), ListForBackupActivity).Get(ctx, &paused); err != nil {
			return fail(wrap("list containers to stop for the backup", err))
		}
		if len(paused) > 0 {
			resumed := false
			resume = func() {
				if resumed {
					return
				}
				resumed = true
				dctx, _ := workflow.NewDisconnectedContext(ctx)
				if err := workflow.ExecuteActivity(services(dctx), StartAfterBackupActivity, paused).Get(dctx, nil); err != nil {
					workflow.GetLogger(ctx).Error("starting containers after the backup failed", "containers", paused, "error", err)
				}
			}
			defer resume() // on cancellation
			if err := workflow.ExecuteActivity(services(ctx), StopForBackupActivity, paused).Get(ctx, nil); err != nil {
				resume()
				return fail(wrap("stop containers for the backup", err))
			}
		}
	}
	var arch ArchiveOutput
	actx, cancelArchive := workflow.WithCancel(ctx)
	archived := workflow.ExecuteActivity(waitForCancel(long(actx, 3)), ArchiveStorageActivity, plan)
	if beside {
		if err := dumped.Get(ctx, &dump); err != nil {
			// The archive would wait for the dump for ever: stop it.
			cancelArchive()
			_ = archived.Get(ctx, nil)
			resume()
			return fail(wrap("dump database", err))
		}
		if dump.Skipped {
			prog.Message = dump.Note
		}
	}
	aerr := archived.Get(ctx, &arch)
	resume()
	if aerr != nil {
		return fail(wrap("archive", aerr))
	}

	step(4)
	if err := workflow.ExecuteActivity(long(ctx, 3), VerifyBackupActivity, plan).Get(ctx, nil); err != nil {
		return fail(wrap(fmt.Sprintf("verify backup %s", plan.ID), err))
	}

	step(5)
	var res BackupResult
	if err := workflow.ExecuteActivity(quick(ctx), CommitBackupActivity, plan).Get(ctx, &res); err != nil {
		return fail(wrap(fmt.Sprintf("commit backup %s", plan.ID), err))
	}

	// An emergency backup belongs to its restore: pruning then could delete
	// the backup being restored, so only regular backups apply retention.
	if in.Kind != KindEmergency {
		step(6)
		var ret RetentionOutput
		if err := workflow.ExecuteActivity(quick(ctx), ApplyRetentionActivity, RetentionInput{}).Get(ctx, &ret); err != nil {
			// The backup itself is committed and verified; a retention
			// failure does not undo it, but the starter reports it as a failure.
			res.RetentionError = err.Error()
		}
		res.Deleted = ret.Deleted
	}
	prog.Completed = append(prog.Completed, prog.StepName)
	prog.State = StateCompleted
	return &res, nil
}

// awaitProceed waits for ProceedSignal while the dump runs. It returns the
// dump's error if the dump fails first, and the cancellation if the backup is
// cancelled first, once the dump has stopped.
func awaitProceed(ctx workflow.Context, dumped workflow.Future) error {
	proceed := workflow.GetSignalChannel(ctx, ProceedSignal)
	var dumpErr error
	for {
		proceeded, cancelled, dumpDone := false, false, false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(proceed, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			proceeded = true
		})
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { cancelled = true })
		if dumped != nil {
			sel.AddFuture(dumped, func(f workflow.Future) {
				dumpErr = f.Get(ctx, nil)
				dumpDone = true
			})
		}
		sel.Select(ctx)
		switch {
		case proceeded:
			return nil
		case cancelled:
			if dumped != nil {
				_ = dumped.Get(ctx, nil) // the dump activity, cancelled too, has stopped
			}
			return ctx.Err()
		case dumpDone && dumpErr != nil && !temporal.IsCanceledError(dumpErr):
			return dumpErr
		case dumpDone:
			dumped = nil // dumped: wait for the signal alone
		}
	}
}

// discardAttempt removes what a cancelled backup wrote (its temporary dump
// and dump record) the way the next backup would: PrepareBackup clears the
// debris of unfinished attempts. The operation lock is still held, so no
// other backup's files are among them.
func discardAttempt(ctx workflow.Context) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	req := BackupPlan{Kind: KindEmergency, StartedAt: workflow.Now(ctx).UTC()}
	if err := workflow.ExecuteActivity(quick(dctx), PrepareBackupActivity, req).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("removing the cancelled backup's partial files failed", "error", err)
	}
}

// CleanupWorkflow applies retention on demand, holding the operation lock.
func CleanupWorkflow(ctx workflow.Context, in CleanupInput) (_ *RetentionOutput, err error) {
	prog := &Progress{Operation: "cleanup", Steps: 2, Step: 1, StepName: "lock", State: StateRunning}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return *prog, nil }); err != nil {
		return nil, err
	}
	defer func() { report(ctx, Outcome{Operation: "cleanup"}, err, prog) }()
	release, err := holdLock(ctx, "cleanup")
	if err != nil {
		prog.State, prog.Message = StateFailed, err.Error()
		return nil, err
	}
	defer release()
	prog.Completed, prog.Step, prog.StepName = []string{"lock"}, 2, "retention"
	var out RetentionOutput
	if err := workflow.ExecuteActivity(quick(ctx), ApplyRetentionActivity, in).Get(ctx, &out); err != nil {
		prog.State, prog.Message = StateFailed, err.Error()
		return nil, fmt.Errorf("retention: %w", err)
	}
	prog.Completed = append(prog.Completed, "retention")
	prog.State = StateCompleted
	return &out, nil
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

// holdLock takes the operation lock for this workflow and returns the
// function that releases it, on a disconnected context so that a cancelled
// workflow still lets go.
func holdLock(ctx workflow.Context, operation string) (func(), error) {
	info := workflow.GetInfo(ctx)
	lock := LockRequest{Operation: operation, WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID}
	if err := workflow.ExecuteActivity(quick(ctx), AcquireLockActivity, lock).Get(ctx, nil); err != nil {
		return nil, err
	}
	return func() {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		_ = workflow.ExecuteActivity(quick(dctx), ReleaseLockActivity, lock).Get(dctx, nil)
	}, nil
}

// report hands the outcome of a finished workflow to the ReportOutcome
// activity (metrics, notifications), on a disconnected context so that a
// cancelled workflow still reports. Added after the first release, hence the
// version marker; a report that cannot be delivered does not change the
// workflow's result.
func report(ctx workflow.Context, o Outcome, err error, prog *Progress) {
	if workflow.GetVersion(ctx, "report-outcome", workflow.DefaultVersion, 1) != 1 {
		return
	}
	info := workflow.GetInfo(ctx)
	o.WorkflowID, o.RunID = info.WorkflowExecution.ID, info.WorkflowExecution.RunID
	o.DurationS = workflow.Now(ctx).Sub(info.WorkflowStartTime).Seconds()
	o.BackupID = prog.BackupID
	o.Succeeded = err == nil
	if err != nil {
		o.Error = err.Error()
		o.Step = prog.StepName
		o.RolledBack = prog.State == StateRolledBack
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if rerr := workflow.ExecuteActivity(quick(dctx), ReportOutcomeActivity, o).Get(dctx, nil); rerr != nil {
		workflow.GetLogger(ctx).Warn("reporting the outcome failed", "error", rerr)
	}
}
