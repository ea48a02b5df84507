package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// nonRetryable lists the error types no retry can fix. A full disk, a
// database that does not answer, a service that will not start are fixable:
// they are retried, the step pending, for the retry window.
var nonRetryable = []string{ErrTypeIntegrity, ErrTypeBadInput, ErrTypeBusy, ErrTypeVerify}

// budget is what one kind of step may spend: how long an attempt may run,
// whether it must heartbeat, how often it is tried and how long the backoff
// between attempts may grow.
type budget struct {
	attempt   time.Duration
	heartbeat bool
	attempts  int32
	maxWait   time.Duration
}

var (
	// bookkeeping: small file and lock operations.
	bookkeeping = budget{attempt: time.Minute, attempts: 5, maxWait: 10 * time.Second}
	// moving: steps that read or write whole trees and archives.
	moving = func(attempts int32) budget {
		return budget{attempt: 6 * time.Hour, heartbeat: true, attempts: attempts, maxWait: time.Minute}
	}
	// postgres: steps that talk to PostgreSQL; a server that is down is
	// retried with backoff for about a minute.
	postgres = budget{attempt: 6 * time.Hour, heartbeat: true, attempts: 5, maxWait: 30 * time.Second}
	// tidying: a clean-up that must not give up while what it removes is
	// in use (an undo holds it back); it stays pending, retried.
	tidying = budget{attempt: 6 * time.Hour, heartbeat: true, maxWait: 10 * time.Minute}
	// uploading: an off-site copy, which may take hours over a slow link
	// and waits minutes between attempts for a store to come back.
	uploading = budget{attempt: 24 * time.Hour, heartbeat: true, attempts: 10, maxWait: 5 * time.Minute}
	// controller: stopping and starting services, which may wait for health.
	controller = budget{attempt: 10 * time.Minute, heartbeat: true, attempts: 5, maxWait: 30 * time.Second}
)

// budgets gives every activity its budget, in one place.
var budgets = map[string]budget{
	AcquireLockActivity:      bookkeeping,
	ReleaseLockActivity:      bookkeeping,
	PrepareBackupActivity:    bookkeeping,
	CommitBackupActivity:     bookkeeping,
	ApplyRetentionActivity:   bookkeeping,
	ListForBackupActivity:    bookkeeping,
	ReportOutcomeActivity:    bookkeeping,
	RunningServicesActivity:  bookkeeping,
	DumpDatabaseActivity:     postgres,
	StageDatabaseActivity:    postgres,
	RestoreDatabaseActivity:  postgres,
	RollbackDatabaseActivity: postgres,
	ArchiveStorageActivity:   moving(3),
	VerifyBackupActivity:     moving(3),
	ValidateArchiveActivity:  moving(3),
	ValidateAndStageActivity: moving(3),
	RestoreStorageActivity:   moving(3),
	VerifyRestoreActivity:    moving(2),
	DiscardStagingActivity:   moving(5),
	RollbackStorageActivity:  moving(5),
	FinishRestoreActivity:    tidying,
	PrepareUndoActivity:      moving(3),
	FreeRestoreIDActivity:    postgres,
	DrillPrepareActivity:     bookkeeping,
	DrillRestoreActivity:     moving(3),
	DrillVerifyActivity:      moving(2),
	DrillCleanActivity:       moving(5),
	DrillReportActivity:      bookkeeping,
	CopyOffsiteActivity:      uploading,
	CollectOffsiteActivity:   uploading,
	AnalyzeRestoredActivity:  postgres,
	StopServicesActivity:     controller,
	StartServicesActivity:    controller,
	StopForBackupActivity:    controller,
	StartAfterBackupActivity: controller,
}

func budgetOf(name string) budget {
	b, ok := budgets[name]
	if !ok {
		panic("workflows: no budget for activity " + name)
	}
	return b
}

// options turns a budget into activity options.
func (b budget) options(summary string) workflow.ActivityOptions {
	o := workflow.ActivityOptions{
		StartToCloseTimeout: b.attempt,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: b.maxWait,
			MaximumAttempts: b.attempts, NonRetryableErrorTypes: nonRetryable,
		},
	}
	if b.heartbeat {
		o.HeartbeatTimeout = HeartbeatTimeout
	}
	return o
}

// retryWindowKey holds, in a workflow context, how long a step that fails
// for a fixable reason is retried (Grant.RetryWindow).
type retryWindowKey struct{}

// withRetryWindow gives the steps run under ctx a retry window.
func withRetryWindow(ctx workflow.Context, w time.Duration) workflow.Context {
	return workflow.WithValue(ctx, retryWindowKey{}, w)
}

// retryWindow is ctx's retry window, or 0.
func retryWindow(ctx workflow.Context) time.Duration {
	w, _ := ctx.Value(retryWindowKey{}).(time.Duration)
	return w
}

// queueKey holds, in a workflow context, the task queue its steps run on
// where it is not the workflow's own.
type queueKey struct{}

// DrillWorkerWait is how long a drill step waits for the drill worker to
// take it: the worker starts one beside itself, so a step left that long
// means it is down, and the drill fails (and cleans up) saying so.
const DrillWorkerWait = time.Hour

// onQueue runs the steps called under ctx on task queue q, each waiting at
// most DrillWorkerWait for a worker there to take it.
func onQueue(ctx workflow.Context, q string) workflow.Context {
	return workflow.WithValue(ctx, queueKey{}, q)
}

// optionsFor is name's budget as activity options under ctx: a step that
// talks to the disk, the database or the services is retried, pending, for
// about the retry window, its backoff capped at the budget's maxWait.
func optionsFor(ctx workflow.Context, name, summary string) workflow.ActivityOptions {
	b := budgetOf(name)
	if w := retryWindow(ctx); w > 0 && b.heartbeat {
		if n := int32(w/b.maxWait) + 6; n > b.attempts { // #nosec G115 -- a window of hours over a wait of seconds
			b.attempts = n
		}
	}
	o := b.options(summary)
	if q, _ := ctx.Value(queueKey{}).(string); q != "" {
		o.TaskQueue, o.ScheduleToStartTimeout = q, DrillWorkerWait
	}
	return o
}

// call runs activity name within its budget; summary is what the Web UI's
// timeline shows for it.
func call(ctx workflow.Context, name, summary string, args ...any) workflow.Future {
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, optionsFor(ctx, name, summary)), name, args...)
}

// callAndWait is call for an activity whose cancellation must have stopped
// it before its future resolves, so nothing is still writing afterwards.
func callAndWait(ctx workflow.Context, name, summary string, args ...any) workflow.Future {
	o := optionsFor(ctx, name, summary)
	o.WaitForCancellation = true
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), name, args...)
}

// disconnected is a context that a cancellation of ctx does not reach, for
// compensation, clean-up and reporting.
func disconnected(ctx workflow.Context) workflow.Context {
	d, _ := workflow.NewDisconnectedContext(ctx)
	return d
}
