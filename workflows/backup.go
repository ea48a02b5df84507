package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// backupSteps names the steps of a backup, for progress.
var backupSteps = []string{"lock", "prepare", "dump database", "archive", "verify", "commit", "retention"}

// BackupWorkflow takes one verified backup: dump the database in a snapshot
// beside the archive of the paths (which appends the dump once complete),
// verify the archive by reading it back against its manifest, commit (rename
// into place, manifest last), and apply retention. It holds the operation
// lock unless its parent restore does.
func BackupWorkflow(ctx workflow.Context, in BackupInput) (_ *BackupResult, err error) {
	if in.Kind == "" {
		in.Kind = KindScheduled
	}
	b := &backup{in: in, prog: &Progress{Operation: "backup", Steps: len(backupSteps), State: StateRunning}}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return *b.prog, nil }); err != nil {
		return nil, err
	}
	if !in.LockHeld { // an emergency backup is reported by its restore
		defer func() {
			b.pub.publish(disconnected(ctx), b.prog)
			report(ctx, Outcome{Operation: "backup", Kind: in.Kind, Warnings: b.warnings}, err, b.prog)
		}()
		b.step(ctx, 0)
		lk, err := takeLock(ctx, "backup")
		if err != nil {
			return nil, b.fail(err)
		}
		defer lk.release(ctx)
		b.lock, b.pub = lk, &publisher{grant: lk.grant}
		if b.decisions, err = newDecisions(ctx); err != nil {
			return nil, err
		}
	}
	if b.lock != nil {
		ctx = withRetryWindow(ctx, b.lock.grant.RetryWindow)
	}
	res, err := b.runDecided(ctx)
	if err != nil {
		return nil, b.fail(err)
	}
	b.prog.Completed = append(b.prog.Completed, b.prog.StepName)
	b.prog.State = StateCompleted
	return res, nil
}

// backupChoices are what an operator may answer to a backup that failed.
var backupChoices = []choice{
	{DecisionRetry, "runs the backup again from the start; what the failed attempt wrote is removed first"},
	{DecisionAbort, "ends the backup as failed; the earlier backups are untouched"},
}

// runDecided runs the backup; where it fails for good and the worker asks
// (VULCAN_ON_FAILURE=ask), an operator decides: retry runs it again from
// the start, abort (or no answer by the deadline) fails it.
func (b *backup) runDecided(ctx workflow.Context) (*BackupResult, error) {
	a := asking{lock: b.lock, decisions: b.decisions, prog: b.prog, pub: b.pub, op: Outcome{Operation: "backup", Kind: b.in.Kind}}
	for {
		res, err := b.run(ctx)
		if err == nil || !a.asks(err) || a.ask(ctx, err, DecisionAbort, backupChoices...) != DecisionRetry {
			return res, err
		}
		b.prog.Completed, b.prog.Message = []string{backupSteps[0]}, "" // the lock is still held
	}
}

// backup is the state of one BackupWorkflow run.
type backup struct {
	in        BackupInput
	prog      *Progress
	lock      *opLock
	pub       *publisher
	decisions *decisions
	plan      BackupPlan
	warnings  []string // for the report: notified even on success
}

func (b *backup) step(ctx workflow.Context, i int) {
	if b.prog.Step > 0 && b.prog.Step < i+1 {
		b.prog.Completed = append(b.prog.Completed, b.prog.StepName)
	}
	b.prog.Step, b.prog.StepName = i+1, backupSteps[i]
	b.pub.publish(ctx, b.prog)
}

func (b *backup) fail(err error) error {
	b.prog.State, b.prog.Message = StateFailed, err.Error()
	return err
}

func (b *backup) summary(i int) string { return "backup: " + backupSteps[i] }

func (b *backup) run(ctx workflow.Context) (*BackupResult, error) {
	info := workflow.GetInfo(ctx)
	b.step(ctx, 1)
	req := BackupPlan{Kind: b.in.Kind, WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, StartedAt: workflow.Now(ctx).UTC(), Full: b.in.Full}
	if err := call(ctx, PrepareBackupActivity, b.summary(1), req).Get(ctx, &b.plan); err != nil {
		return nil, wrap("prepare backup", err)
	}
	b.prog.BackupID = b.plan.ID

	b.step(ctx, 2)
	dumped, err := b.startDump(ctx)
	if err != nil {
		return nil, err
	}

	b.step(ctx, 3)
	resumeErr, err := b.archive(ctx, dumped)
	if err != nil {
		return nil, err
	}

	b.step(ctx, 4)
	if err := call(ctx, VerifyBackupActivity, b.summary(4), b.plan).Get(ctx, nil); err != nil {
		return nil, wrap(fmt.Sprintf("verify backup %s", b.plan.ID), err)
	}

	b.step(ctx, 5)
	var res BackupResult
	if err := call(ctx, CommitBackupActivity, b.summary(5), b.plan).Get(ctx, &res); err != nil {
		return nil, wrap(fmt.Sprintf("commit backup %s", b.plan.ID), err)
	}

	// The off-site copy starts before retention, which keeps the backups it
	// is still to copy.
	if res.OffsitePending && workflow.GetVersion(ctx, "offsite-copy", workflow.DefaultVersion, 1) == 1 {
		res.OffsiteWorkflow = startOffsite(ctx, b.plan.ID)
	}

	// An emergency backup belongs to its restore: pruning then could delete
	// the backup being restored, so only regular backups apply retention.
	if b.in.Kind != KindEmergency {
		b.step(ctx, 6)
		var ret RetentionOutput
		if err := call(ctx, ApplyRetentionActivity, b.summary(6), RetentionInput{}).Get(ctx, &ret); err != nil {
			// The backup is committed and verified; the starter still
			// reports a retention failure as a failure.
			res.RetentionError = err.Error()
		}
		res.Deleted = ret.Deleted
		res.Warnings = append(res.Warnings, ret.Warnings...)
		b.warnings = ret.Warnings
	}
	if resumeErr != nil {
		// The backup is valid, but the application is not as it was.
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("backup %s is committed and verified, but %v", b.plan.ID, resumeErr), ErrTypeServices, nil)
	}
	return &res, nil
}

// startDump starts the database dump, which runs beside the archive step. An
// emergency backup begun beside its restore's validation then waits for
// ProceedSignal; cancelled while it waits, it removes its partial dump.
func (b *backup) startDump(ctx workflow.Context) (workflow.Future, error) {
	if !b.in.AwaitProceed {
		return call(ctx, DumpDatabaseActivity, b.summary(2), b.plan), nil
	}
	dumped := callAndWait(ctx, DumpDatabaseActivity, b.summary(2), b.plan)
	if err := awaitProceed(ctx, dumped); err != nil {
		if temporal.IsCanceledError(err) {
			discardAttempt(ctx)
			return nil, err
		}
		return nil, wrap("dump database", err)
	}
	return dumped, nil
}

// archive writes the archive while the dump completes. Stores that are unsafe
// to copy live (label vulcan.stop-during-backup) are stopped for this step
// only and started again whatever happens; a failure to start them is
// returned apart, as the backup itself is still good.
func (b *backup) archive(ctx workflow.Context, dumped workflow.Future) (resumeErr error, err error) {
	var paused []string
	if err := call(ctx, ListForBackupActivity, "backup: list containers to stop", nil).Get(ctx, &paused); err != nil {
		return nil, wrap("list containers to stop for the backup", err)
	}
	resumed := false
	resume := func() {
		if resumed || len(paused) == 0 {
			return
		}
		resumed = true
		dctx := disconnected(ctx)
		if err := call(dctx, StartAfterBackupActivity, "backup: start containers again", paused).Get(dctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("starting containers after the backup failed", "containers", paused, "error", err)
			resumeErr = fmt.Errorf("starting the containers stopped for it (%v) failed: %v", paused, rootMessage(err))
		}
	}
	defer resume() // on cancellation
	if len(paused) > 0 {
		if err := call(ctx, StopForBackupActivity, "backup: stop containers", paused).Get(ctx, nil); err != nil {
			resume()
			return resumeErr, wrap("stop containers for the backup", err)
		}
	}
	actx, cancelArchive := workflow.WithCancel(ctx)
	archived := callAndWait(actx, ArchiveStorageActivity, b.summary(3), b.plan)
	var dump DumpOutput
	if err := dumped.Get(ctx, &dump); err != nil {
		// The archive would wait for the dump for ever: stop it.
		cancelArchive()
		_ = archived.Get(ctx, nil)
		resume()
		return resumeErr, wrap("dump database", err)
	}
	if dump.Skipped {
		b.prog.Message = dump.Note
	}
	aerr := archived.Get(ctx, nil)
	resume()
	if aerr != nil {
		return resumeErr, wrap("archive", aerr)
	}
	return resumeErr, nil
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
	dctx := disconnected(ctx)
	req := BackupPlan{Kind: KindEmergency, StartedAt: workflow.Now(ctx).UTC()}
	if err := call(dctx, PrepareBackupActivity, "backup: remove the partial dump", req).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("removing the cancelled backup's partial files failed", "error", err)
	}
}

// CleanupWorkflow applies retention on demand, holding the operation lock.
func CleanupWorkflow(ctx workflow.Context, in CleanupInput) (_ *RetentionOutput, err error) {
	prog := &Progress{Operation: "cleanup", Steps: 2, Step: 1, StepName: "lock", State: StateRunning}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return *prog, nil }); err != nil {
		return nil, err
	}
	var pub *publisher
	defer func() {
		pub.publish(disconnected(ctx), prog)
		report(ctx, Outcome{Operation: "cleanup"}, err, prog)
	}()
	lk, err := takeLock(ctx, "cleanup")
	if err != nil {
		prog.State, prog.Message = StateFailed, err.Error()
		return nil, err
	}
	defer lk.release(ctx)
	pub = &publisher{grant: lk.grant}
	prog.Completed, prog.Step, prog.StepName = []string{"lock"}, 2, "retention"
	pub.publish(ctx, prog)
	var out RetentionOutput
	if err := call(ctx, ApplyRetentionActivity, "cleanup: retention", in).Get(ctx, &out); err != nil {
		prog.State, prog.Message = StateFailed, err.Error()
		return nil, fmt.Errorf("retention: %w", err)
	}
	prog.Completed = append(prog.Completed, "retention")
	prog.State = StateCompleted
	return &out, nil
}
