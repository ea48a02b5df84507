package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// RestoreSteps names the seven steps of a restore, for progress and messages.
var RestoreSteps = []string{
	"validate", "emergency backup", "stop services", "restore storage",
	"restore database", "start services", "verify",
}

// RestoreIDFor is the id a restore uses for its staging directory, its
// pre-restore copies and its temporary databases.
func RestoreIDFor(t time.Time) string { return t.UTC().Format("20060102_150405") }

// RestoreWorkflow restores a backup in seven steps. Steps 1–3 touch no data.
// From step 4 on, a failure or a cancellation rolls everything back on a
// disconnected context: the database and storage swaps are undone, the
// services that were stopped are started again, and the old state is checked
// against the emergency backup. Pre-restore copies are removed only once step
// 7 has passed.
func RestoreWorkflow(ctx workflow.Context, in RestoreInput) (_ *RestoreResult, err error) {
	info := workflow.GetInfo(ctx)
	logger := workflow.GetLogger(ctx)
	restoreID := RestoreIDFor(info.WorkflowStartTime)
	res := &RestoreResult{RestoreID: restoreID, DryRun: in.DryRun}
	prog := &Progress{Operation: "restore", Steps: len(RestoreSteps), State: StateRunning}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return *prog, nil }); err != nil {
		return nil, err
	}
	if !in.DryRun {
		defer func() { report(ctx, Outcome{Operation: "restore"}, err, prog) }()
	}
	step := func(i int) {
		if prog.Step > 0 && prog.State == StateRunning {
			prog.Completed = append(prog.Completed, prog.StepName)
		}
		prog.Step, prog.StepName = i, RestoreSteps[i-1]
	}
	stepErr := func(i int, err error) error {
		return wrap(fmt.Sprintf("step %d (%s)", i, RestoreSteps[i-1]), err)
	}

	if !in.DryRun {
		release, err := holdLock(ctx, "restore")
		if err != nil {
			prog.State, prog.Message = StateFailed, err.Error()
			return nil, err
		}
		defer release()
	}

	// The emergency backup of step 2 is a child workflow. Since this
	// version it starts here, beside step 1: its database dump only reads
	// the current state, and runs on the CPU that step 1's extraction
	// leaves idle; the child archives the files, verifies and commits only
	// once step 1 has passed and sent it ProceedSignal. A step 1 that fails
	// or is cancelled cancels the child, which then commits nothing and
	// removes its partial dump. Before this version the child started in
	// step 2.
	var emergency BackupResult
	var emergencyDone workflow.ChildWorkflowFuture
	cancelEmergency := func() {}
	emergencyOptions := workflow.ChildWorkflowOptions{
		WorkflowID: info.WorkflowExecution.ID + "-emergency",
		TaskQueue:  info.TaskQueueName,
	}
	early := !in.DryRun && workflow.GetVersion(ctx, "emergency-beside-validate", workflow.DefaultVersion, 1) == 1
	if early {
		emergencyOptions.WaitForCancellation = true
		ectx, cancel := workflow.WithCancel(workflow.WithChildOptions(ctx, emergencyOptions))
		cancelEmergency = cancel
		emergencyDone = workflow.ExecuteChildWorkflow(ectx, BackupWorkflowName, BackupInput{Kind: KindEmergency, LockHeld: true, AwaitProceed: true})
	}
	// abandonEmergency stops an early emergency backup after a failed step
	// 1 and waits until it has cleaned up.
	abandonEmergency := func() {
		if !early {
			return
		}
		cancelEmergency()
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		if err := emergencyDone.Get(dctx, nil); err != nil && !temporal.IsCanceledError(err) {
			logger.Warn("the emergency backup begun beside step 1 failed", "error", err)
		}
	}

	// 1. Validate: nothing is touched before the archive is proven sound.
	// Since this version a restore that goes ahead reads the archive once:
	// it is checked as it is extracted into the staging directory, which
	// step 4 then swaps in (a dry run only reads it). Before, step 1 read it
	// and staging read it again.
	step(1)
	var plan RestorePlan
	var stagedFiles StorageOutput
	validateByStaging := !in.DryRun && workflow.GetVersion(ctx, "validate-by-staging", workflow.DefaultVersion, 1) == 1
	if validateByStaging {
		var sp StagedPlan
		sin := StageInput{Archive: in.Archive, RestoreID: restoreID}
		if err := workflow.ExecuteActivity(long(ctx, 3), ValidateAndStageActivity, sin).Get(ctx, &sp); err != nil {
			abandonEmergency()
			dctx, _ := workflow.NewDisconnectedContext(ctx)
			if derr := workflow.ExecuteActivity(quick(dctx), DiscardStagingActivity, StepInput{RestoreID: restoreID}).Get(dctx, nil); derr != nil {
				logger.Error("discarding the staged copy failed", "error", derr)
			}
			prog.State, prog.Message = StateFailed, err.Error()
			return nil, stepErr(1, err)
		}
		plan, stagedFiles = sp.Plan, sp.Staged
	} else if err := workflow.ExecuteActivity(long(ctx, 3), ValidateArchiveActivity, in).Get(ctx, &plan); err != nil {
		abandonEmergency()
		prog.State, prog.Message = StateFailed, err.Error()
		return nil, stepErr(1, err)
	}
	res.Plan = plan
	prog.BackupID = plan.BackupID
	if in.DryRun {
		prog.Completed = append(prog.Completed, prog.StepName)
		prog.State, prog.Message = StateCompleted, "dry run: validated, nothing changed"
		return res, nil
	}

	// 2. Emergency backup of the current state, as a child workflow (begun
	// beside step 1, see above; told here to go on). Beside it, while the
	// application still runs, the backup is staged: the dump loaded into a
	// fresh database and (unless step 1 did it) the files extracted into
	// the staging directory. Neither touches what is in place; steps 4 and
	// 5 then only swap. Before this version staging happened in steps 4
	// and 5. The load is not begun beside step 1: it would slow the
	// extraction there (the longer of the two, on two cores) more than it
	// gains, where beside the emergency backup it fills a core the backup
	// leaves idle (one restore of the reference data each way, timed
	// through the starter: 6.4 s against 6.9 s).
	step(2)
	in4 := StepInput{RestoreID: restoreID, Archive: plan.Archive, Manifest: plan.Manifest}
	var emergencyErr error
	var proceeded workflow.Future
	switch {
	case !early:
		emergencyDone = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, emergencyOptions), BackupWorkflowName, BackupInput{Kind: KindEmergency, LockHeld: true})
	case emergencyDone.IsReady():
		// It waits for the signal, so only a failure (its dump's) ends it
		// before step 1 does: nothing is staged beside it then.
		emergencyErr = emergencyDone.Get(ctx, &emergency)
	default:
		proceeded = emergencyDone.SignalChildWorkflow(ctx, ProceedSignal, true)
	}
	staged := workflow.GetVersion(ctx, "stage-before-stop", workflow.DefaultVersion, 1) == 1
	var stageErr error
	if staged && emergencyErr == nil {
		var storageDone workflow.Future
		if !validateByStaging {
			storageDone = workflow.ExecuteActivity(long(ctx, 3), StageStorageActivity, in4)
		}
		dbDone := workflow.ExecuteActivity(database(ctx), StageDatabaseActivity, in4)
		if storageDone != nil {
			stageErr = storageDone.Get(ctx, &stagedFiles)
		}
		stageErr = errors.Join(stageErr, dbDone.Get(ctx, nil))
	}
	if emergencyErr == nil {
		if proceeded != nil && proceeded.Get(ctx, nil) != nil && !emergencyDone.IsReady() {
			// Only a child that has already ended can miss the signal;
			// should one still wait for it, it is stopped, not waited on.
			cancelEmergency()
		}
		emergencyErr = emergencyDone.Get(ctx, &emergency)
	}
	err = errors.Join(emergencyErr, stageErr)
	if staged && err != nil {
		// Nothing was swapped: only the staged copies go.
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		if derr := workflow.ExecuteActivity(quick(dctx), DiscardStagingActivity, in4).Get(dctx, nil); derr != nil {
			logger.Error("discarding the staged copies failed", "error", derr)
		}
	}
	if err != nil {
		prog.State, prog.Message = StateFailed, err.Error()
		return nil, stepErr(2, firstErr(err))
	}
	res.EmergencyBackup = &emergency

	// From here on every step that changes something first registers how
	// to undo it; the undo steps are idempotent and run newest first.
	var undo []func(workflow.Context) error
	failed := true
	if staged {
		// Runs last: whatever staged copy the undo steps before it did not
		// consume (a failure before the swaps) is discarded.
		undo = append(undo, func(dctx workflow.Context) error {
			if err := workflow.ExecuteActivity(quick(dctx), DiscardStagingActivity, in4).Get(dctx, nil); err != nil {
				return fmt.Errorf("discard staged copies: %w", err)
			}
			return nil
		})
	}
	defer func() {
		if !failed {
			return
		}
		if len(undo) == 0 {
			return
		}
		prog.State = StateRollingBack
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		var errs []string
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](dctx); err != nil {
				logger.Error("rollback step failed", "error", err)
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			prog.State = StateFailed
			prog.Message = "ROLLBACK INCOMPLETE, manual action needed: " + strings.Join(errs, "; ")
			return
		}
		prog.State = StateRolledBack
	}()

	// 3. Stop services: first learn which run (kept in workflow state, so a
	// worker crash cannot lose it), then stop exactly those.
	step(3)
	var running []string
	if err := workflow.ExecuteActivity(quick(ctx), RunningServicesActivity).Get(ctx, &running); err != nil {
		prog.State, prog.Message = StateFailed, err.Error()
		return nil, stepErr(3, err)
	}
	res.Stopped = running
	undo = append(undo, func(dctx workflow.Context) error {
		// Runs last: start what was stopped, then check the old state.
		var errs []error
		if err := workflow.ExecuteActivity(services(dctx), StartServicesActivity, running).Get(dctx, nil); err != nil {
			errs = append(errs, fmt.Errorf("start services %v: %w", running, err))
		}
		var v VerifyOutput
		vin := VerifyInput{Manifest: emergency.Manifest, Services: running, SkipDatabase: !emergency.Database}
		if err := workflow.ExecuteActivity(long(dctx, 2), VerifyRestoreActivity, vin).Get(dctx, &v); err != nil {
			errs = append(errs, fmt.Errorf("verify rolled-back state: %w", err))
		} else if len(v.Problems) > 0 {
			// Services ran between the emergency backup and the stop, so
			// small differences are expected; they are logged, not fatal.
			logger.Warn("rolled-back state differs from the emergency backup", "problems", v.Problems)
		}
		return errors.Join(errs...)
	})
	if err := workflow.ExecuteActivity(services(ctx), StopServicesActivity, running).Get(ctx, nil); err != nil {
		return nil, rollbackErr(prog, stepErr(3, err))
	}

	// 4. Restore storage: extract into staging, check, swap.
	step(4)
	undo = append(undo, func(dctx workflow.Context) error {
		rin := RollbackInput{RestoreID: restoreID, EmergencyManifest: emergency.Manifest}
		if err := workflow.ExecuteActivity(long(dctx, 5), RollbackStorageActivity, rin).Get(dctx, nil); err != nil {
			return fmt.Errorf("roll back storage: %w", err)
		}
		return nil
	})
	var storage StorageOutput
	if err := workflow.ExecuteActivity(long(ctx, 3), RestoreStorageActivity, in4).Get(ctx, &storage); err != nil {
		return nil, rollbackErr(prog, stepErr(4, err))
	}
	if storage.Files == 0 { // swapped what step 2 staged
		storage.Files, storage.Bytes = stagedFiles.Files, stagedFiles.Bytes
	}
	res.Storage = &storage

	// 5. Restore database: fresh database and rename swap, or in place.
	step(5)
	undo = append(undo, func(dctx workflow.Context) error {
		rin := RollbackInput{RestoreID: restoreID, EmergencyManifest: emergency.Manifest}
		if err := workflow.ExecuteActivity(database(dctx), RollbackDatabaseActivity, rin).Get(dctx, nil); err != nil {
			return fmt.Errorf("roll back database: %w", err)
		}
		return nil
	})
	var db DatabaseOutput
	if err := workflow.ExecuteActivity(database(ctx), RestoreDatabaseActivity, in4).Get(ctx, &db); err != nil {
		return nil, rollbackErr(prog, stepErr(5, err))
	}
	res.Database = &db

	// 6. Start services.
	step(6)
	undo = append(undo, func(dctx workflow.Context) error {
		// Services may be up again: stop them before the old data goes back.
		if err := workflow.ExecuteActivity(services(dctx), StopServicesActivity, running).Get(dctx, nil); err != nil {
			return fmt.Errorf("stop services for rollback: %w", err)
		}
		return nil
	})
	if err := workflow.ExecuteActivity(services(ctx), StartServicesActivity, running).Get(ctx, nil); err != nil {
		return nil, rollbackErr(prog, stepErr(6, err))
	}

	// 7. Verify files, rows and services.
	step(7)
	var v VerifyOutput
	// Staged files were hashed as they were extracted and then only renamed:
	// their layout is checked, not their contents again.
	vin := VerifyInput{Manifest: plan.Manifest, Services: running, SkipDatabase: db.Skipped, LayoutOnly: staged}
	if err := workflow.ExecuteActivity(long(ctx, 2), VerifyRestoreActivity, vin).Get(ctx, &v); err != nil {
		return nil, rollbackErr(prog, stepErr(7, err))
	}
	if len(v.Problems) > 0 {
		err := temporal.NewNonRetryableApplicationError("restored state does not match the backup: "+strings.Join(v.Problems, "; "), ErrTypeVerify, nil)
		return nil, rollbackErr(prog, stepErr(7, err))
	}
	res.Verify = &v
	failed = false

	// Only now are the pre-restore copies removed: by a workflow of their
	// own that outlives this one, so the restore is done once verified
	// (removing a large old tree took seconds). Before this version the
	// restore removed them itself.
	if workflow.GetVersion(ctx, "cleanup-after-restore", workflow.DefaultVersion, 1) == 1 {
		res.CleanupWorkflowID = info.WorkflowExecution.ID + "-cleanup"
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: res.CleanupWorkflowID, TaskQueue: info.TaskQueueName,
			ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		})
		child := workflow.ExecuteChildWorkflow(cctx, RestoreCleanupWorkflowName, in4)
		if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			res.CleanupError = err.Error()
		}
	} else if err := workflow.ExecuteActivity(long(ctx, 3), FinishRestoreActivity, in4).Get(ctx, nil); err != nil {
		res.CleanupError = err.Error()
	}
	prog.Completed = append(prog.Completed, prog.StepName)
	prog.State = StateCompleted
	return res, nil
}

// RestoreCleanupWorkflow removes what a verified restore kept until then:
// the pre-restore copies of the paths, the kept database and the staging
// directory. A restore starts it and completes without waiting; it runs
// without the operation lock, as it only touches names of its own restore.
// A failure is reported like any other (notification, metrics); the data
// in place is not affected.
func RestoreCleanupWorkflow(ctx workflow.Context, in StepInput) (err error) {
	prog := &Progress{Operation: "restore cleanup", Steps: 1, Step: 1, StepName: "remove pre-restore copies", State: StateRunning}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return *prog, nil }); err != nil {
		return err
	}
	defer func() { report(ctx, Outcome{Operation: "restore cleanup"}, err, prog) }()
	if err := workflow.ExecuteActivity(long(ctx, 5), FinishRestoreActivity, in).Get(ctx, nil); err != nil {
		prog.State, prog.Message = StateFailed, err.Error()
		return fmt.Errorf("remove the pre-restore copies of restore %s: %w", in.RestoreID, err)
	}
	prog.Completed, prog.State = []string{prog.StepName}, StateCompleted
	return nil
}

// firstErr returns the first of the errors errors.Join put together, so that
// a step's error keeps its application error type for the starter.
func firstErr(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
		return firstErr(j.Unwrap()[0])
	}
	return err
}

// rollbackErr records a failure that triggers the rollback and wraps it so the
// starter can say the restore was rolled back.
func rollbackErr(prog *Progress, err error) error {
	prog.Message = err.Error()
	if temporal.IsCanceledError(err) {
		return err
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRolledBack, err)
}

// services is for controller calls: stopping and starting may wait for health.
func services(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			MaximumAttempts: 5, NonRetryableErrorTypes: nonRetryable,
		},
	})
}
