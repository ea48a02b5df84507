package workflows

import "time"

// Names shared by the worker, the starter and the tests.
const (
	// DefaultTaskQueue is the task queue when VULCAN_TASK_QUEUE is unset.
	DefaultTaskQueue = "vulcan-backup"
	// ScheduleID is the nightly backup schedule.
	ScheduleID = "vulcan-daily-backup"
	// DrillScheduleID is the restore drill schedule.
	DrillScheduleID = "vulcan-restore-drill"
	// ProgressQuery returns a Progress.
	ProgressQuery = "progress"
	// ProceedSignal tells an emergency backup started with AwaitProceed
	// that its restore's validation has passed.
	ProceedSignal = "proceed"
	// DecideName is the Update (and Signal) that answers an operation
	// waiting for an operator with a Decision.
	DecideName = "decide"

	// Workflow types.
	BackupWorkflowName  = "BackupWorkflow"
	RestoreWorkflowName = "RestoreWorkflow"
	CleanupWorkflowName = "CleanupWorkflow"
	// RestoreCleanupWorkflowName removes a verified restore's pre-restore copies.
	RestoreCleanupWorkflowName = "RestoreCleanupWorkflow"
	// RestoreDrillWorkflowName restores a backup into scratch space to
	// prove it restores, and times it.
	RestoreDrillWorkflowName = "RestoreDrillWorkflow"
	// OffsiteCopyWorkflowName copies committed backups to the off-site
	// store, without the operation lock.
	OffsiteCopyWorkflowName = "OffsiteCopyWorkflow"

	// Workflow id prefixes used by the starter: <prefix>-<UTC stamp>.
	BackupIDPrefix  = "vulcan-backup"
	RestoreIDPrefix = "vulcan-restore"
	CleanupIDPrefix = "vulcan-cleanup"
	DrillIDPrefix   = "vulcan-drill"
	// OffsiteIDPrefix-<backup id> is the off-site copy of a backup.
	OffsiteIDPrefix = "vulcan-offsite"
)

// DrillTaskQueue is the task queue of the drill worker beside the worker on
// queue: a process at the lowest CPU and I/O priority that runs a drill's
// restore and verify steps.
func DrillTaskQueue(queue string) string { return queue + "-drill" }

// SourceRemote is a drill of a backup downloaded from the off-site store.
const SourceRemote = "remote"

// Backup kinds (the manifest's kind field).
const (
	KindScheduled = "scheduled"
	KindManual    = "manual"
	KindEmergency = "emergency"
)

// Activity names. Activities are registered under these names so that this
// package never imports the activities (and through them, I/O).
const (
	AcquireLockActivity      = "AcquireLock"
	ReleaseLockActivity      = "ReleaseLock"
	PrepareBackupActivity    = "PrepareBackup"
	DumpDatabaseActivity     = "DumpDatabase"
	ArchiveStorageActivity   = "ArchiveStorage"
	VerifyBackupActivity     = "VerifyBackup"
	CommitBackupActivity     = "CommitBackup"
	ApplyRetentionActivity   = "ApplyRetention"
	ListForBackupActivity    = "ListForBackup"
	StopForBackupActivity    = "StopForBackup"
	StartAfterBackupActivity = "StartAfterBackup"
	ReportOutcomeActivity    = "ReportOutcome"
	ValidateArchiveActivity  = "ValidateArchive"
	RunningServicesActivity  = "RunningServices"
	StopServicesActivity     = "StopServices"
	RestoreStorageActivity   = "RestoreStorage"
	RestoreDatabaseActivity  = "RestoreDatabase"
	StartServicesActivity    = "StartServices"
	VerifyRestoreActivity    = "VerifyRestore"
	FinishRestoreActivity    = "FinishRestore"
	RollbackStorageActivity  = "RollbackStorage"
	RollbackDatabaseActivity = "RollbackDatabase"
	StageDatabaseActivity    = "StageDatabase"
	DiscardStagingActivity   = "DiscardStaging"
	AnalyzeRestoredActivity  = "AnalyzeRestored"
	ValidateAndStageActivity = "ValidateAndStage"
	PrepareUndoActivity      = "PrepareUndo"
	FreeRestoreIDActivity    = "FreeRestoreID"
	DrillPrepareActivity     = "DrillPrepare"
	DrillRestoreActivity     = "DrillRestore"
	DrillVerifyActivity      = "DrillVerify"
	DrillCleanActivity       = "DrillClean"
	CopyOffsiteActivity      = "CopyOffsite"
	CollectOffsiteActivity   = "CollectOffsite"
	DrillReportActivity      = "DrillReport"
)

// AllActivities lists every activity name, for the check that the worker
// registers each one.
var AllActivities = []string{
	AcquireLockActivity, ReleaseLockActivity, PrepareBackupActivity, DumpDatabaseActivity, ArchiveStorageActivity,
	VerifyBackupActivity, CommitBackupActivity, ApplyRetentionActivity, ListForBackupActivity, StopForBackupActivity,
	StartAfterBackupActivity, ReportOutcomeActivity, ValidateArchiveActivity, RunningServicesActivity, StopServicesActivity,
	RestoreStorageActivity, RestoreDatabaseActivity, StartServicesActivity, VerifyRestoreActivity, FinishRestoreActivity,
	RollbackStorageActivity, RollbackDatabaseActivity, StageDatabaseActivity, DiscardStagingActivity,
	ValidateAndStageActivity, AnalyzeRestoredActivity, PrepareUndoActivity, FreeRestoreIDActivity,
	DrillPrepareActivity, DrillRestoreActivity, DrillVerifyActivity, DrillCleanActivity, DrillReportActivity,
	CopyOffsiteActivity, CollectOffsiteActivity,
}

// Application error types: the starter maps them to exit codes and messages.
const (
	ErrTypeIntegrity = "IntegrityError" // checksum, truncated, unsafe or unexpected entry
	ErrTypeBadInput  = "BadInput"       // wrong path, missing manifest, bad configuration
	ErrTypeBusy      = "OperationBusy"  // another backup or restore runs
	ErrTypeNoSpace   = "InsufficientSpace"
	ErrTypeDatabase  = "DatabaseError"
	ErrTypeServices  = "ServiceError"
	ErrTypeVerify    = "VerificationFailed"
	// ErrTypeOffsite is an off-site store that refuses (credentials, a
	// missing bucket): retried, pending, while an operator fixes it.
	ErrTypeOffsite    = "OffsiteStoreError"
	ErrTypeRolledBack = "RestoreRolledBack"
	// ErrTypeRollbackIncomplete: a restore's rollback stopped at a failure;
	// the data may be mixed and an operator must look.
	ErrTypeRollbackIncomplete = "RollbackIncomplete"
)

// HeartbeatTimeout is how long an activity that moves data may go without a
// heartbeat before Temporal takes its worker for dead and retries the step on
// another (or a restarted) worker.
const HeartbeatTimeout = 30 * time.Second

// HeartbeatEvery is the longest a worker holds back a heartbeat before it sends
// it (worker.Options.MaxHeartbeatThrottleInterval), well inside
// HeartbeatTimeout so a busy worker is not mistaken for a dead one.
const HeartbeatEvery = 5 * time.Second
