package workflows

import "time"

// BackupInput starts a BackupWorkflow.
type BackupInput struct {
	// Kind is scheduled, manual or emergency; empty means scheduled (the
	// Schedule starts the workflow without arguments).
	Kind string `json:"kind"`
	// LockHeld is set by a restore that already holds the operation lock
	// for its emergency backup.
	LockHeld bool `json:"lock_held,omitempty"`
	// AwaitProceed is set by a restore that starts its emergency backup
	// beside its validation: the backup dumps the database at once, but
	// archives the files only once ProceedSignal arrives. Cancelled before
	// that, it commits nothing.
	AwaitProceed bool `json:"await_proceed,omitempty"`
	// Full reads every file, copying nothing from the backup before.
	Full bool `json:"full,omitempty"`
}

// LockRequest takes or drops the operation lock.
type LockRequest struct {
	Operation  string `json:"operation"`
	WorkflowID string `json:"workflow_id"`
	// State, when set, is recorded in the lock file: StateRollbackIncomplete
	// keeps the lock from being taken over after the workflow has ended.
	State string `json:"state,omitempty"`
}

// Grant is what AcquireLock answers with the lock: the worker's settings
// for a step that fails (VULCAN_ON_FAILURE, VULCAN_DECISION_TIMEOUT,
// VULCAN_RETRY_WINDOW), whether the namespace has the Vulcan search
// attributes, and the host. A zero Grant (as in a history recorded before
// it existed) means: fail or roll back at once, publish nothing.
type Grant struct {
	OnFailure        string        `json:"on_failure,omitempty"`
	DecisionTimeout  time.Duration `json:"decision_timeout,omitempty"`
	RetryWindow      time.Duration `json:"retry_window,omitempty"`
	SearchAttributes bool          `json:"search_attributes,omitempty"`
	Host             string        `json:"host,omitempty"`
}

// OnFailure values.
const (
	OnFailureAsk      = "ask"
	OnFailureRollback = "rollback"
)

// BackupPlan is what every step of a backup needs to know.
type BackupPlan struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id"`
	StartedAt  time.Time `json:"started_at"`
	Full       bool      `json:"full,omitempty"`
}

// DumpOutput says what the database step did.
type DumpOutput struct {
	Skipped bool   `json:"skipped"`
	Note    string `json:"note,omitempty"`
	Size    int64  `json:"size"`
	Tables  int    `json:"tables"`
}

// ArchiveOutput says what the archive step wrote.
type ArchiveOutput struct {
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Warnings int    `json:"warnings"`
	// FullRead says every file was read; ReusedBytes is what was copied
	// from the backup before instead.
	FullRead    bool  `json:"full_read,omitempty"`
	ReusedBytes int64 `json:"reused_bytes,omitempty"`
}

// BackupResult is the outcome of a BackupWorkflow.
type BackupResult struct {
	ID           string   `json:"id"`
	Kind         string   `json:"kind"`
	Archive      string   `json:"archive"`
	Manifest     string   `json:"manifest"`
	Size         int64    `json:"size"`
	SHA256       string   `json:"sha256"`
	Files        int      `json:"files"`
	Bytes        int64    `json:"bytes"`
	Database     bool     `json:"database"`
	DatabaseNote string   `json:"database_note,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
	Deleted      []string `json:"deleted,omitempty"`
	// FullRead says every file was read; otherwise ReusedBytes of them were
	// copied from backup ReusedFrom, unchanged.
	FullRead    bool   `json:"full_read,omitempty"`
	ReusedBytes int64  `json:"reused_bytes,omitempty"`
	ReusedFrom  string `json:"reused_from,omitempty"`
	// RetentionError is set when the backup was committed but retention failed.
	RetentionError string `json:"retention_error,omitempty"`
	// OffsitePending says the backup is marked to be copied off-site;
	// OffsiteWorkflow is the workflow that copies it.
	OffsitePending  bool   `json:"offsite_pending,omitempty"`
	OffsiteWorkflow string `json:"offsite_workflow,omitempty"`
}

// OffsiteInput starts an off-site copy of a backup (and of every earlier
// one still marked pending).
type OffsiteInput struct {
	BackupID string `json:"backup_id"`
	// RetryWindow is how long a store that refuses or does not answer is
	// retried, pending (the backup's grant).
	RetryWindow time.Duration `json:"retry_window,omitempty"`
}

// OffsiteResult is what an off-site copy did.
type OffsiteResult struct {
	// Copied are the backups whose copy completed, oldest first.
	Copied   []string `json:"copied"`
	Location string   `json:"location"`
	Objects  int      `json:"objects"`
	Uploaded int      `json:"uploaded"`
	// SentBytes and DedupedBytes are archive bytes uploaded and found in
	// the store already.
	SentBytes    int64 `json:"sent_bytes"`
	DedupedBytes int64 `json:"deduped_bytes"`
	// Collect is what the store's retention and garbage collection did.
	Collect *CollectResult `json:"collect,omitempty"`
}

// CollectResult is what the off-site retention and garbage collection did.
type CollectResult struct {
	Deleted      []string `json:"deleted"`
	Kept         []string `json:"kept"`
	Removed      int      `json:"removed"`
	RemovedBytes int64    `json:"removed_bytes"`
	Locked       int      `json:"locked"`
	// Skipped says why the collection, or part of it, did not run: a copy
	// was running, or a backup's references could not be read.
	Skipped string `json:"skipped,omitempty"`
}

// RetentionInput runs retention.
type RetentionInput struct {
	// Days overrides the worker's VULCAN_RETENTION_DAYS when above zero.
	Days   int  `json:"days,omitempty"`
	DryRun bool `json:"dry_run,omitempty"`
}

// RetentionOutput lists what retention deleted (or would delete).
type RetentionOutput struct {
	Days    int      `json:"days"`
	Deleted []string `json:"deleted"`
	Kept    []string `json:"kept"`
	DryRun  bool     `json:"dry_run,omitempty"`
	// Warnings say how the newest backup differs in kind from the one
	// before (no dump where there was one, far fewer files).
	Warnings []string `json:"warnings,omitempty"`
}

// CleanupInput starts a CleanupWorkflow.
type CleanupInput = RetentionInput

// RestoreInput starts a RestoreWorkflow.
type RestoreInput struct {
	// Archive names the backup: a path (relative to VULCAN_ROOT), a file
	// name in the backup directory, or a backup id.
	Archive string `json:"archive"`
	// DryRun validates and returns the plan, touching nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Undo, instead of Archive, names a verified restore (its restore id)
	// to undo within its undo window: its pre-restore copies are swapped
	// back, through the same seven steps.
	Undo string `json:"undo,omitempty"`
}

// StageInput asks step 1 of a restore that goes ahead (not a dry run) to
// validate the backup by extracting it into the restore's staging directory.
type StageInput struct {
	// Archive names the backup, as in RestoreInput.
	Archive string `json:"archive"`
	// RestoreID names the staging directory.
	RestoreID string `json:"restore_id"`
	// Undo names the restore whose pre-restore copies are staged instead.
	Undo string `json:"undo,omitempty"`
}

// StagedPlan is what ValidateAndStage returns: the plan, and what it staged.
type StagedPlan struct {
	Plan   RestorePlan   `json:"plan"`
	Staged StorageOutput `json:"staged"`
}

// RestorePlan is what validation found and what the restore will do.
type RestorePlan struct {
	Archive      string    `json:"archive"`
	Manifest     string    `json:"manifest"`
	BackupID     string    `json:"backup_id"`
	Kind         string    `json:"kind"`
	CreatedAt    time.Time `json:"created_at"`
	Paths        []string  `json:"paths"`
	Files        int       `json:"files"`
	Bytes        int64     `json:"bytes"`
	HasDatabase  bool      `json:"has_database"`
	Database     string    `json:"database,omitempty"`
	DatabaseNote string    `json:"database_note,omitempty"`
	Services     string    `json:"services"`
	NeededBytes  int64     `json:"needed_bytes"`
	FreeBytes    int64     `json:"free_bytes"`
	// UndoWindow is how long the pre-restore copies are kept once the
	// restore has passed (VULCAN_UNDO_WINDOW).
	UndoWindow time.Duration `json:"undo_window,omitempty"`
	// SetIDFiles are the files the backup recorded with a setuid or
	// setgid bit; they are restored without it.
	SetIDFiles []string `json:"setid_files,omitempty"`
	// StagedBytes is what an earlier attempt's staged copy takes; it is
	// replaced, so it counts as free.
	StagedBytes int64 `json:"staged_bytes,omitempty"`
}

// StepInput is what the restore steps after validation need.
type StepInput struct {
	RestoreID string `json:"restore_id"`
	Archive   string `json:"archive"`
	Manifest  string `json:"manifest"`
}

// RestoreCleanupInput starts a RestoreCleanupWorkflow.
type RestoreCleanupInput struct {
	StepInput
	// KeepFor is how long the pre-restore copies are kept before they go.
	KeepFor time.Duration `json:"keep_for,omitempty"`
}

// StorageOutput says what the storage step did.
type StorageOutput struct {
	Paths []string `json:"paths"`
	Files int      `json:"files"`
	Bytes int64    `json:"bytes"`
}

// DatabaseOutput says what the database step did.
type DatabaseOutput struct {
	Mode    string `json:"mode"` // rename, in-place or skipped
	Note    string `json:"note,omitempty"`
	Skipped bool   `json:"skipped"`
}

// VerifyInput checks the restored (or rolled back) state.
type VerifyInput struct {
	Manifest string   `json:"manifest"`
	Services []string `json:"services"`
	// SkipDatabase is set when the database step was skipped.
	SkipDatabase bool `json:"skip_database,omitempty"`
	// LayoutOnly checks the files' types, sizes, modes and links without
	// reading them again: for a tree hashed as it was extracted and then
	// moved into place by renames.
	LayoutOnly bool `json:"layout_only,omitempty"`
}

// VerifyOutput reports a verification.
type VerifyOutput struct {
	Files    int      `json:"files"`
	Bytes    int64    `json:"bytes"`
	Tables   int      `json:"tables"`
	Problems []string `json:"problems,omitempty"`
}

// RollbackInput undoes a restore.
type RollbackInput struct {
	RestoreID string `json:"restore_id"`
	// EmergencyManifest is the emergency backup to fall back on.
	EmergencyManifest string `json:"emergency_manifest,omitempty"`
}

// RollbackOutput says how a step was undone.
type RollbackOutput struct {
	Action string `json:"action"`
}

// RestoreResult is the outcome of a RestoreWorkflow.
type RestoreResult struct {
	RestoreID       string        `json:"restore_id"`
	Plan            RestorePlan   `json:"plan"`
	DryRun          bool          `json:"dry_run,omitempty"`
	EmergencyBackup *BackupResult `json:"emergency_backup,omitempty"`
	Stopped         []string      `json:"stopped_services,omitempty"`
	// CleanupError is set when the restore succeeded but its pre-restore
	// copies could not all be removed.
	CleanupError string `json:"cleanup_error,omitempty"`
	// CleanupWorkflowID names the workflow that removes the pre-restore
	// copies after the restore has completed.
	CleanupWorkflowID string          `json:"cleanup_workflow_id,omitempty"`
	Storage           *StorageOutput  `json:"storage,omitempty"`
	Database          *DatabaseOutput `json:"database,omitempty"`
	Verify            *VerifyOutput   `json:"verify,omitempty"`
}

// Progress is what the progress query returns.
type Progress struct {
	Operation string   `json:"operation"`
	Step      int      `json:"step"`
	Steps     int      `json:"steps"`
	StepName  string   `json:"step_name"`
	State     string   `json:"state"`
	Message   string   `json:"message,omitempty"`
	BackupID  string   `json:"backup_id,omitempty"`
	Completed []string `json:"completed,omitempty"`
	// Choices and Deadline are set while the operation waits for a
	// decision: what it accepts, and when it decides itself.
	Choices  []string   `json:"choices,omitempty"`
	Deadline *time.Time `json:"deadline,omitempty"`
}

// Progress states.
const (
	StateRunning     = "running"
	StateCompleted   = "completed"
	StateFailed      = "failed"
	StateRollingBack = "rolling back"
	StateRolledBack  = "rolled back"
	// StateRollbackIncomplete: the rollback stopped at a failure; the
	// operation keeps the lock and waits for an operator.
	StateRollbackIncomplete = "rollback-incomplete"
	// StateAwaiting: a step failed for good and the operation waits for
	// an operator's decision (VULCAN_ON_FAILURE=ask).
	StateAwaiting = "awaiting-operator"
)

// Outcome is what a finished workflow reports (metrics and notifications).
type Outcome struct {
	Operation  string  `json:"operation"`
	Kind       string  `json:"kind,omitempty"`
	Succeeded  bool    `json:"succeeded"`
	Step       string  `json:"step,omitempty"`
	Error      string  `json:"error,omitempty"`
	BackupID   string  `json:"backup_id,omitempty"`
	WorkflowID string  `json:"workflow_id"`
	RunID      string  `json:"run_id"`
	DurationS  float64 `json:"duration_seconds"`
	RolledBack bool    `json:"rolled_back,omitempty"`
	// RollbackIncomplete is set when a restore's rollback stopped at a
	// failure and the operation waits for an operator.
	RollbackIncomplete bool `json:"rollback_incomplete,omitempty"`
	// Awaiting: the operation has not ended but waits for an operator's
	// decision on a failed step.
	Awaiting bool `json:"awaiting,omitempty"`
	// Warnings of a successful operation that an operator should see.
	Warnings []string `json:"warnings,omitempty"`
	// Event tells apart the reports of one run (state and step), so a
	// retried report is recognised as the same one.
	Event string `json:"event"`
}
