// Package activities adapts the domain packages under internal/ to Temporal:
// each activity heartbeats with progress, classifies its errors (retryable or
// not) and holds no business logic of its own.
package activities

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/lock"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/metrics"
	"github.com/project-vulcan/vulcan-backup/internal/pgdump"
	"github.com/project-vulcan/vulcan-backup/internal/restore"
	"github.com/project-vulcan/vulcan-backup/internal/services"
	"github.com/project-vulcan/vulcan-backup/internal/store"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// Activities holds what the activities need. Methods are registered under
// the names in workflows/constants.go.
type Activities struct {
	// Root is the absolute project root.
	Root string
	// Paths are the paths under Root to back up.
	Paths []string
	// Backups is the backup directory.
	Backups store.Dir
	// DB is the database, or nil when DATABASE_URL is unset.
	DB *pgdump.Target
	// RetentionDays is the default retention.
	RetentionDays int
	// UndoWindow is how long a verified restore keeps its pre-restore
	// copies.
	UndoWindow time.Duration
	// FullEvery is how long backups may copy unchanged files from earlier
	// backups before one reads every file again (VULCAN_FULL_EVERY).
	FullEvery time.Duration
	// StallTimeout is how long pg_dump or psql may move no bytes before the
	// step is stopped as stuck and retried; 0 means DefaultStallTimeout.
	StallTimeout time.Duration
	// RTO is the recovery time objective a drill is measured against, and
	// DrillCheck the operator's command a drill runs (VULCAN_RTO,
	// VULCAN_DRILL_CHECK).
	RTO        time.Duration
	DrillCheck string
	// DrillOnFailure is Failure's OnFailure for drills
	// (VULCAN_DRILL_ON_FAILURE).
	DrillOnFailure string
	// Failure is what the lock grants an operation: how a step that fails
	// is retried and decided (Host and SearchAttributes are filled in).
	Failure workflows.Grant
	// Services stops and starts the application around a restore.
	Services services.Controller
	// BackupServices stops and starts the stores that are unsafe to copy
	// live, around the archive step of a backup; nil means none.
	BackupServices services.Controller
	// Temporal answers whether a lock holder still runs; nil means every
	// other holder is taken to be running.
	Temporal client.Client
	// Offsite is the off-site store; nil means no off-site copies.
	Offsite *Offsite
	// ToolVersion goes into every manifest.
	ToolVersion string
	// Metrics records Prometheus metrics; nil records nothing.
	Metrics *metrics.Metrics
	// NotifyURLs receive a webhook when an operation fails (and when one
	// succeeds, with NotifyOnSuccess).
	NotifyURLs      []string
	NotifyOnSuccess bool
	// WebUI is the Web UI's base URL for links in notifications ("" for none).
	WebUI string
	// Namespace is the Temporal namespace, for those links.
	Namespace string
	// Log receives structured logs.
	Log *slog.Logger

	// manifests spares the steps of one operation decoding the same
	// manifest again.
	manifests manifest.Cache
}

// Register registers every activity on r under its workflows name.
func (a *Activities) Register(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}) {
	for name, fn := range map[string]any{
		workflows.AcquireLockActivity:      a.AcquireLock,
		workflows.ReleaseLockActivity:      a.ReleaseLock,
		workflows.PrepareBackupActivity:    a.PrepareBackup,
		workflows.DumpDatabaseActivity:     a.DumpDatabase,
		workflows.ArchiveStorageActivity:   a.ArchiveStorage,
		workflows.VerifyBackupActivity:     a.VerifyBackup,
		workflows.CommitBackupActivity:     a.CommitBackup,
		workflows.ApplyRetentionActivity:   a.ApplyRetention,
		workflows.ValidateArchiveActivity:  a.ValidateArchive,
		workflows.FreeRestoreIDActivity:    a.FreeRestoreID,
		workflows.RunningServicesActivity:  a.RunningServices,
		workflows.StopServicesActivity:     a.StopServices,
		workflows.RestoreStorageActivity:   a.RestoreStorage,
		workflows.RestoreDatabaseActivity:  a.RestoreDatabase,
		workflows.StartServicesActivity:    a.StartServices,
		workflows.ListForBackupActivity:    a.ListForBackup,
		workflows.StopForBackupActivity:    a.StopForBackup,
		workflows.StartAfterBackupActivity: a.StartAfterBackup,
		workflows.ReportOutcomeActivity:    a.ReportOutcome,
		workflows.VerifyRestoreActivity:    a.VerifyRestore,
		workflows.FinishRestoreActivity:    a.FinishRestore,
		workflows.RollbackStorageActivity:  a.RollbackStorage,
		workflows.RollbackDatabaseActivity: a.RollbackDatabase,
		workflows.StageDatabaseActivity:    a.StageDatabase,
		workflows.DiscardStagingActivity:   a.DiscardStaging,
		workflows.AnalyzeRestoredActivity:  a.AnalyzeRestored,
		workflows.ValidateAndStageActivity: a.ValidateAndStage,
		workflows.PrepareUndoActivity:      a.PrepareUndo,
		workflows.DrillPrepareActivity:     a.DrillPrepare,
		workflows.DrillRestoreActivity:     a.DrillRestore,
		workflows.DrillVerifyActivity:      a.DrillVerify,
		workflows.DrillCleanActivity:       a.DrillClean,
		workflows.DrillReportActivity:      a.DrillReport,
		workflows.CopyOffsiteActivity:      a.CopyOffsite,
		workflows.CollectOffsiteActivity:   a.CollectOffsite,
	} {
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

// RegisterDrill registers the drill steps that read and write a whole
// backup, which the drill worker runs at low priority.
func (a *Activities) RegisterDrill(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}) {
	r.RegisterActivityWithOptions(a.DrillRestore, activity.RegisterOptions{Name: workflows.DrillRestoreActivity})
	r.RegisterActivityWithOptions(a.DrillVerify, activity.RegisterOptions{Name: workflows.DrillVerifyActivity})
}

func (a *Activities) log(ctx context.Context) *slog.Logger {
	l := a.Log
	if l == nil {
		l = slog.Default()
	}
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		l = l.With("activity", info.ActivityType.Name, "workflow_id", info.WorkflowExecution.ID, "attempt", info.Attempt)
	}
	return l
}

// rel shows a path relative to the root when it lies under it.
func (a *Activities) rel(p string) string {
	if r, err := filepath.Rel(a.Root, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// abs resolves a path given relative to the root.
func (a *Activities) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(a.Root, p)
}

// classify turns domain errors into Temporal errors with a stable type: what
// no retry can fix becomes non-retryable; a full disk stays retryable, as an
// operator can fix it; anything else is retried as it is.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var busy *lock.BusyError
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &appErr):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &busy):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeBusy, nil, busy.Holder)
	case archive.IsIntegrity(err), errors.Is(err, manifest.ErrInvalid):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeIntegrity, nil)
	case errors.Is(err, pgdump.ErrScript):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeDatabase, nil)
	case errors.Is(err, pgdump.ErrRowCounts):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeVerify, nil)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// Fixable: retried, the step pending, while an operator frees space.
		return temporal.NewApplicationError("no space left: "+err.Error(), workflows.ErrTypeNoSpace)
	case errors.Is(err, pgdump.ErrBadURL):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeBadInput, nil)
	}
	return err
}

func badInput(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), workflows.ErrTypeBadInput, nil)
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// heartbeat records progress every few seconds from a ticker, so that long
// steps without progress callbacks (a big COUNT, a psql load) still show the
// worker is alive and receive cancellation.
type heartbeat struct {
	ctx   context.Context
	mu    sync.Mutex
	last  any
	moved time.Time // when set was last called
	stop  chan struct{}
	done  chan struct{}
}

func startHeartbeat(ctx context.Context) *heartbeat {
	h := &heartbeat{ctx: ctx, stop: make(chan struct{}), done: make(chan struct{})}
	if !activity.IsActivity(ctx) {
		close(h.done)
		return h
	}
	go func() {
		defer close(h.done)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				h.mu.Lock()
				d := h.last
				h.mu.Unlock()
				activity.RecordHeartbeat(ctx, d)
			}
		}
	}()
	return h
}

// set stores the latest progress; the ticker sends it.
func (h *heartbeat) set(d any) {
	h.mu.Lock()
	h.last, h.moved = d, time.Now()
	h.mu.Unlock()
}

// DefaultStallTimeout is how long a database tool may move no bytes before
// its step is stopped (VULCAN_STALL_TIMEOUT).
const DefaultStallTimeout = 30 * time.Minute

// ErrStalled marks a step stopped because its tool moved no bytes for too
// long: a retry starts it afresh.
var ErrStalled = restore.ErrStalled

// watch returns a context that is cancelled, with an ErrStalled cause, once
// set has not been called for limit: a stuck pg_dump or psql is then
// stopped rather than kept alive by the ticker. stop ends the watch.
func (h *heartbeat) watch(ctx context.Context, limit time.Duration, what string) (watched context.Context, stop func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	h.mu.Lock()
	h.moved = time.Now()
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(max(limit/20, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-wctx.Done():
				return
			case <-t.C:
				h.mu.Lock()
				idle := time.Since(h.moved)
				h.mu.Unlock()
				if idle >= limit {
					cancel(fmt.Errorf("%w: %s moved no bytes for %v; stopped to be retried (VULCAN_STALL_TIMEOUT)", ErrStalled, what, idle.Round(time.Second)))
					return
				}
			}
		}
	}()
	return wctx, func() { close(done); cancel(nil) }
}

func (a *Activities) stallTimeout() time.Duration {
	if a.StallTimeout > 0 {
		return a.StallTimeout
	}
	return DefaultStallTimeout
}

func (h *heartbeat) end() {
	select {
	case <-h.done:
	default:
		close(h.stop)
		<-h.done
	}
}
