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

// restoreID is the id of a restore started at t. An undo started within the
// second of the restore it undoes (a restore can now take less than one)
// takes the second after it: its copies must not share the undone
// restore's names.
func restoreID(t time.Time, undo string) string {
	if at, err := time.ParseInLocation("20060102_150405", undo, time.UTC); err == nil && !t.UTC().Truncate(time.Second).After(at) {
		return RestoreIDFor(at.Add(time.Second))
	}
	return RestoreIDFor(t)
}

// RestoreWorkflow restores a backup in seven steps, as a saga: each step that
// changes something first registers how to undo it, and a failure or a
// cancellation unwinds what was done, newest first, on a disconnected
// context. A rollback that cannot complete keeps the operation lock and waits
// for an operator (DecideName: retry or abort).
func RestoreWorkflow(ctx workflow.Context, in RestoreInput) (_ *RestoreResult, err error) {
	r, err := newRestore(ctx, in)
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		if in.Undo != "" {
			return nil, temporal.NewNonRetryableApplicationError("a dry run of an undo is not offered: the undo checks the kept copies before it moves anything", ErrTypeBadInput, nil)
		}
		return r.dryRun(ctx)
	}
	defer func() {
		r.pub.publish(disconnected(ctx), r.prog)
		report(ctx, Outcome{Operation: "restore"}, err, r.prog)
	}()
	if r.lock, err = takeLock(ctx, "restore"); err != nil {
		return nil, r.failed(err)
	}
	r.pub = &publisher{grant: r.lock.grant}
	defer r.lock.release(ctx)
	if err := r.run(withRetryWindow(ctx, r.lock.grant.RetryWindow)); err != nil {
		return nil, r.rollBack(ctx, err)
	}
	r.finish(ctx)
	return r.res, nil
}

// freeID, first in step 1, moves the restore's id on past any second whose
// staging directory, pre-restore copies or databases exist: a restore that
// ended in the same second, or one from before the clock was set back,
// would otherwise have its copies taken for this one's. The time-based id
// stays for histories of earlier releases.
func (r *restore) freeID(ctx workflow.Context) error {
	if workflow.GetVersion(ctx, "free-restore-id", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	if err := call(ctx, FreeRestoreIDActivity, "restore: a restore id no other restore uses", r.id).Get(ctx, &r.id); err != nil {
		return wrap("pick a restore id", err)
	}
	r.res.RestoreID = r.id
	return nil
}

// run is the seven steps. From step 3 on a step's activity, when cancelled,
// is waited for until it has stopped (callAndWait): its undo must not begin
// while it still loads, renames or starts something.
func (r *restore) run(ctx workflow.Context) error {
	if err := r.validate(ctx); err != nil {
		return err
	}
	if err := r.backUpAndStage(ctx); err != nil {
		return err
	}
	// The application is down from here: fixable failures get a sixth of
	// the window before an operator (or the rollback) decides.
	ctx = withRetryWindow(ctx, retryWindow(ctx)/6)
	if err := r.stopServices(ctx); err != nil {
		return err
	}
	if err := r.restoreStorage(ctx); err != nil {
		return err
	}
	if err := r.restoreDatabase(ctx); err != nil {
		return err
	}
	if err := r.startServices(ctx); err != nil {
		return err
	}
	return r.verify(ctx)
}

// restore is the state of one RestoreWorkflow run.
type restore struct {
	in         RestoreInput
	id         string
	workflowID string
	res        *RestoreResult
	prog       *Progress
	lock       *opLock
	pub        *publisher
	decisions  *decisions
	saga       saga
	emergency  *emergencyBackup
	plan       RestorePlan
	staged     StorageOutput
	running    []string
	dbSkipped  bool
}

func newRestore(ctx workflow.Context, in RestoreInput) (*restore, error) {
	id := restoreID(workflow.GetInfo(ctx).WorkflowStartTime, in.Undo)
	r := &restore{
		in: in, id: id, workflowID: workflow.GetInfo(ctx).WorkflowExecution.ID,
		res:  &RestoreResult{RestoreID: id, DryRun: in.DryRun},
		prog: &Progress{Operation: "restore", Steps: len(RestoreSteps), State: StateRunning},
	}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return *r.prog, nil }); err != nil {
		return nil, err
	}
	d, err := newDecisions(ctx)
	if err != nil {
		return nil, err
	}
	r.decisions = d
	return r, nil
}

// step marks step i (1-based) as the current one.
func (r *restore) step(ctx workflow.Context, i int) string {
	if r.prog.Step > 0 && r.prog.State == StateRunning {
		r.prog.Completed = append(r.prog.Completed, r.prog.StepName)
	}
	r.prog.Step, r.prog.StepName = i, RestoreSteps[i-1]
	r.pub.publish(ctx, r.prog)
	return fmt.Sprintf("restore %d/%d: %s", i, len(RestoreSteps), RestoreSteps[i-1])
}

// restoreChoices are what an operator may answer to a step that failed for
// good once the application is stopped.
var restoreChoices = []choice{
	{DecisionRetry, "runs the step again (fix the cause first)"},
	{DecisionRollback, "puts the storage and database back as they were and starts the services again"},
}

// attempt runs one of steps 3-7. Where it fails for good and the worker
// asks (VULCAN_ON_FAILURE=ask), an operator decides: retry runs it again;
// rollback, or no answer by the deadline, returns the failure, which rolls
// the restore back.
func (r *restore) attempt(ctx workflow.Context, run func() error) error {
	a := asking{lock: r.lock, decisions: r.decisions, prog: r.prog, pub: r.pub, op: Outcome{Operation: "restore"}}
	for {
		err := run()
		if err == nil || !a.asks(err) {
			return err
		}
		if a.ask(ctx, err, DecisionRollback, restoreChoices...) != DecisionRetry {
			return err
		}
	}
}

// stepErr names the current step in err.
func (r *restore) stepErr(err error) error {
	return wrap(fmt.Sprintf("step %d (%s)", r.prog.Step, r.prog.StepName), err)
}

func (r *restore) failed(err error) error {
	r.prog.State, r.prog.Message = StateFailed, rootMessage(err)
	return err
}

func (r *restore) input() StepInput {
	return StepInput{RestoreID: r.id, Archive: r.plan.Archive, Manifest: r.plan.Manifest}
}

// dryRun validates the backup by reading it, and changes nothing.
func (r *restore) dryRun(ctx workflow.Context) (*RestoreResult, error) {
	summary := r.step(ctx, 1)
	if err := call(ctx, ValidateArchiveActivity, summary, r.in).Get(ctx, &r.plan); err != nil {
		return nil, r.failed(r.stepErr(err))
	}
	r.res.Plan, r.prog.BackupID = r.plan, r.plan.BackupID
	r.prog.Completed = append(r.prog.Completed, r.prog.StepName)
	r.prog.State, r.prog.Message = StateCompleted, "dry run: validated, nothing changed"
	return r.res, nil
}

// 1. Validate: the archive is checked as it is extracted into the staging
// directory, which step 4 swaps in; nothing in place is touched. An undo
// borrows the pre-restore copies of the restore it undoes instead. The
// emergency backup of step 2 starts beside it and dumps the database.
func (r *restore) validate(ctx workflow.Context) error {
	summary := r.step(ctx, 1)
	if err := r.freeID(ctx); err != nil {
		return r.stepErr(err)
	}
	r.saga.add("discard the staged copies", false, func(dctx workflow.Context) error {
		return call(dctx, DiscardStagingActivity, "rollback: discard the staged copies", StepInput{RestoreID: r.id}).Get(dctx, nil)
	})
	r.emergency = startEmergencyBackup(ctx)
	r.saga.add("stop the emergency backup", false, r.emergency.abandon)
	var sp StagedPlan
	var prepare workflow.Future
	if r.in.Undo != "" {
		prepare = call(ctx, PrepareUndoActivity, summary+" (the copies kept by restore "+r.in.Undo+")", StageInput{Undo: r.in.Undo, RestoreID: r.id})
	} else {
		prepare = call(ctx, ValidateAndStageActivity, summary, StageInput{Archive: r.in.Archive, RestoreID: r.id})
	}
	if err := prepare.Get(ctx, &sp); err != nil {
		return r.stepErr(err)
	}
	r.plan, r.staged = sp.Plan, sp.Staged
	r.res.Plan, r.prog.BackupID = r.plan, r.plan.BackupID
	return nil
}

// 2. Emergency backup of the current state (the child told to go on), and
// beside it, while the application still runs, the dump loaded into a fresh
// database. Neither touches what is in place.
func (r *restore) backUpAndStage(ctx workflow.Context) error {
	summary := r.step(ctx, 2)
	staged := r.emergency.proceed(ctx, func() workflow.Future {
		return call(ctx, StageDatabaseActivity, summary+" (load the dump beside it)", r.input())
	})
	if err := errors.Join(r.emergency.wait(ctx), staged); err != nil {
		return r.stepErr(firstErr(err))
	}
	r.res.EmergencyBackup = &r.emergency.result
	return nil
}

// 3. Stop services: first learn which run (kept in workflow state, so a
// worker crash cannot lose it), then stop exactly those.
func (r *restore) stopServices(ctx workflow.Context) error {
	summary := r.step(ctx, 3)
	if err := call(ctx, RunningServicesActivity, summary+" (which run)").Get(ctx, &r.running); err != nil {
		return r.stepErr(err)
	}
	r.res.Stopped = r.running
	r.saga.add("check the rolled-back state", false, r.checkRolledBack)
	r.saga.add("start the services again", true, func(dctx workflow.Context) error {
		return call(dctx, StartServicesActivity, "rollback: start services", r.running).Get(dctx, nil)
	})
	if err := r.attempt(ctx, func() error { return callAndWait(ctx, StopServicesActivity, summary, r.running).Get(ctx, nil) }); err != nil {
		return r.stepErr(err)
	}
	return nil
}

// 4. Restore storage: swap the staged copy into place, keeping the current
// one as <path>.pre-restore-<id>.
func (r *restore) restoreStorage(ctx workflow.Context) error {
	summary := r.step(ctx, 4)
	r.saga.add("put the storage back", true, func(dctx workflow.Context) error {
		rin := RollbackInput{RestoreID: r.id, EmergencyManifest: r.emergency.result.Manifest}
		return call(dctx, RollbackStorageActivity, "rollback: put the storage back", rin).Get(dctx, nil)
	})
	var out StorageOutput
	if err := r.attempt(ctx, func() error { return callAndWait(ctx, RestoreStorageActivity, summary, r.input()).Get(ctx, &out) }); err != nil {
		return r.stepErr(err)
	}
	if out.Files == 0 { // swapped what step 1 staged
		out.Files, out.Bytes = r.staged.Files, r.staged.Bytes
	}
	r.res.Storage = &out
	return nil
}

// 5. Restore database: rename the loaded database into place (the current
// one kept as <db>_pre_restore_<id>), or load in place in one transaction.
func (r *restore) restoreDatabase(ctx workflow.Context) error {
	summary := r.step(ctx, 5)
	r.saga.add("put the database back", true, func(dctx workflow.Context) error {
		rin := RollbackInput{RestoreID: r.id, EmergencyManifest: r.emergency.result.Manifest}
		return call(dctx, RollbackDatabaseActivity, "rollback: put the database back", rin).Get(dctx, nil)
	})
	var db DatabaseOutput
	if err := r.attempt(ctx, func() error { return callAndWait(ctx, RestoreDatabaseActivity, summary, r.input()).Get(ctx, &db) }); err != nil {
		return r.stepErr(err)
	}
	r.res.Database, r.dbSkipped = &db, db.Skipped
	return nil
}

// 6. Start services, and wait until they are healthy.
func (r *restore) startServices(ctx workflow.Context) error {
	summary := r.step(ctx, 6)
	r.saga.add("stop the services for the rollback", true, func(dctx workflow.Context) error {
		return call(dctx, StopServicesActivity, "rollback: stop services", r.running).Get(dctx, nil)
	})
	if err := r.attempt(ctx, func() error { return callAndWait(ctx, StartServicesActivity, summary, r.running).Get(ctx, nil) }); err != nil {
		return r.stepErr(err)
	}
	return nil
}

// 7. Verify files, rows and services. Every restored file is read back
// from the disk and hashed: the hashes taken of the archive's stream as it
// was extracted say nothing of the bytes a writer then put on the disk.
// (Runs of earlier code checked only the layout.)
func (r *restore) verify(ctx workflow.Context) error {
	summary := r.step(ctx, 7)
	var v VerifyOutput
	layoutOnly := workflow.GetVersion(ctx, "restore-verify-contents", workflow.DefaultVersion, 1) == workflow.DefaultVersion
	vin := VerifyInput{Manifest: r.plan.Manifest, Services: r.running, SkipDatabase: r.dbSkipped, LayoutOnly: layoutOnly}
	err := r.attempt(ctx, func() error {
		if err := callAndWait(ctx, VerifyRestoreActivity, summary, vin).Get(ctx, &v); err != nil {
			return err
		}
		if len(v.Problems) > 0 {
			return temporal.NewNonRetryableApplicationError(
				"restored state does not match the backup: "+strings.Join(v.Problems, "; "), ErrTypeVerify, nil)
		}
		return nil
	})
	if err != nil {
		return r.stepErr(err)
	}
	r.res.Verify = &v
	return nil
}

// checkRolledBack compares the rolled-back state with the emergency backup.
// Services ran between that backup and the stop, so differences are
// expected: they are logged, not fatal.
func (r *restore) checkRolledBack(dctx workflow.Context) error {
	var v VerifyOutput
	vin := VerifyInput{Manifest: r.emergency.result.Manifest, Services: r.running, SkipDatabase: !r.emergency.result.Database}
	if err := call(dctx, VerifyRestoreActivity, "rollback: check the rolled-back state", vin).Get(dctx, &v); err != nil {
		return err
	}
	if len(v.Problems) > 0 {
		workflow.GetLogger(dctx).Warn("rolled-back state differs from the emergency backup", "problems", v.Problems)
	}
	return nil
}

// finish completes a verified restore: the pre-restore copies are removed by
// a workflow of its own that outlives this one, started even if this one is
// cancelled now.
func (r *restore) finish(ctx workflow.Context) {
	info := workflow.GetInfo(ctx)
	r.res.CleanupWorkflowID = info.WorkflowExecution.ID + "-cleanup"
	cctx := workflow.WithChildOptions(disconnected(ctx), workflow.ChildWorkflowOptions{
		WorkflowID: r.res.CleanupWorkflowID, TaskQueue: info.TaskQueueName,
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:     "remove the pre-restore copies of restore " + r.id,
	})
	child := workflow.ExecuteChildWorkflow(cctx, RestoreCleanupWorkflowName, RestoreCleanupInput{StepInput: r.input(), KeepFor: r.plan.UndoWindow})
	if err := child.GetChildWorkflowExecution().Get(cctx, nil); err != nil {
		r.res.CleanupError = err.Error()
	}
	r.prog.Completed = append(r.prog.Completed, r.prog.StepName)
	r.prog.State = StateCompleted
}

// rollBack unwinds the saga after cause. A rollback that cannot complete
// marks the lock, reports, and waits for an operator: retry unwinds again
// from where it stopped, abort leaves things as they are and lets go of the
// lock.
func (r *restore) rollBack(ctx workflow.Context, cause error) error {
	dctx := disconnected(ctx)
	touched := r.prog.Step >= 3
	if touched {
		r.prog.State = StateRollingBack
		r.pub.publish(dctx, r.prog)
	}
	for {
		err := r.saga.unwind(dctx)
		if err == nil {
			break
		}
		incomplete := r.incomplete(cause, err)
		r.decisions.offer(DecisionRetry, DecisionAbort)
		r.prog.State, r.prog.Message = StateRollbackIncomplete, rootMessage(incomplete)
		r.pub.publish(dctx, r.prog)
		if merr := r.lock.mark(dctx, StateRollbackIncomplete); merr != nil {
			workflow.GetLogger(ctx).Error("marking the lock failed", "error", merr)
		}
		report(ctx, Outcome{Operation: "restore"}, incomplete, r.prog)
		if r.decisions.wait(dctx) == DecisionAbort {
			return incomplete
		}
		r.prog.State, r.prog.Message = StateRollingBack, ""
	}
	if !touched {
		return r.failed(cause)
	}
	r.prog.State, r.prog.Message = StateRolledBack, rootMessage(cause)
	if temporal.IsCanceledError(cause) {
		return cause
	}
	return temporal.NewNonRetryableApplicationError(
		rootMessage(cause)+"; rolled back: the storage and database are as they were, the services started again",
		ErrTypeRolledBack, cause)
}

// incomplete is the error of a rollback that stopped at failure: what
// failed, what is left to undo, and where the data is.
func (r *restore) incomplete(cause, failure error) error {
	var where []string
	for _, p := range r.plan.Paths {
		where = append(where, fmt.Sprintf("%s: the state before the restore is %s.pre-restore-%s if present, else %s", p, p, r.id, p))
	}
	if r.plan.Database != "" {
		where = append(where, fmt.Sprintf("database: the state before the restore is the database %s_pre_restore_%s if present, else %s", r.plan.Database, r.id, r.plan.Database))
	}
	msg := fmt.Sprintf("ROLLBACK INCOMPLETE: %s; the rollback failed at: %s; not yet undone: %s. %s"+
		"The operation lock is kept. Fix the cause, then run `starter retry %s` to resume the rollback",
		rootMessage(cause), failure, r.saga.left(), strings.Join(append(where, ""), ". "), r.workflowID)
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeRollbackIncomplete, failure)
}

// RestoreCleanupWorkflow finishes a verified restore: it gives the restored
// database its statistics at once, keeps the pre-restore copies (the only
// exact copy of the state when the services stopped) for in.KeepFor, then
// removes them, the kept database and the staging directory. A restore
// starts it and completes without waiting; it runs without the operation
// lock, as it only touches names of its own restore.
func RestoreCleanupWorkflow(ctx workflow.Context, in RestoreCleanupInput) (err error) {
	prog := &Progress{Operation: "restore cleanup", Steps: 1, Step: 1, StepName: "remove pre-restore copies", State: StateRunning}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return *prog, nil }); err != nil {
		return err
	}
	defer func() { report(ctx, Outcome{Operation: "restore cleanup"}, err, prog) }()
	if err := call(ctx, AnalyzeRestoredActivity, "analyze the restored database", in.StepInput).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("analyzing the restored database failed", "error", err)
	}
	if in.KeepFor > 0 {
		prog.Message = fmt.Sprintf("the pre-restore copies are kept until %s", workflow.Now(ctx).Add(in.KeepFor).UTC().Format(time.RFC3339))
		timer := workflow.NewTimerWithOptions(ctx, in.KeepFor, workflow.TimerOptions{Summary: "keep the pre-restore copies (undo window)"})
		if err := timer.Get(ctx, nil); err != nil {
			prog.State, prog.Message = StateFailed, "cancelled: the pre-restore copies are kept"
			return fmt.Errorf("restore %s: cleanup cancelled, the pre-restore copies are kept: %w", in.RestoreID, err)
		}
	}
	if err := call(ctx, FinishRestoreActivity, "remove the pre-restore copies", in.StepInput).Get(ctx, nil); err != nil {
		prog.State, prog.Message = StateFailed, err.Error()
		return fmt.Errorf("remove the pre-restore copies of restore %s: %w", in.RestoreID, err)
	}
	prog.Completed, prog.State, prog.Message = []string{prog.StepName}, StateCompleted, ""
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
