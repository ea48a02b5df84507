// Package faultpoint marks the places where the fault-injection tests stop a
// worker on purpose. In a normal build Hit does nothing; a binary built with
// the faultinject tag (only the e2e tests build one) halts at the point named
// by VULCAN_FAULTPOINT, so a test can kill the process at a known place.
package faultpoint

// Env names the variable that selects the point to halt at.
const Env = "VULCAN_FAULTPOINT"

// The points, in the order a restore reaches them.
const (
	Validate         = "validate"           // step 1, before the archive is read
	EmergencyArchive = "emergency-archive"  // step 2, while the emergency backup is written
	ServicesStopped  = "services-stopped"   // step 3, services stopped, not yet reported
	Extracting       = "extracting"         // step 4, part of the archive extracted
	StorageSwapped   = "storage-swapped"    // step 4, swap done, not yet reported
	DatabaseLoading  = "database-loading"   // step 5, part of the dump loaded
	DatabaseHalfSwap = "database-half-swap" // step 5, current database renamed aside, restored one not yet in place
	BeforeVerify     = "before-verify"      // step 7, before anything is checked

	// RolledBackDatabase and RolledBackStorage: a rollback's database
	// and storage undo done, not yet reported.
	RolledBackDatabase = "rolled-back-database"
	RolledBackStorage  = "rolled-back-storage"

	// BackupHalfCommitted: a backup's dump renamed into place, its
	// archive and manifest not yet.
	BackupHalfCommitted = "backup-half-committed"

	// BackupReusing: a backup's archive step has copied members of the
	// previous backup into its temporary archive, and not finished it.
	BackupReusing = "backup-reusing"

	// DrillExtracting: a drill has extracted part of the backup into its
	// scratch root.
	DrillExtracting = "drill-extracting"

	// OffsiteUploading: an off-site copy has uploaded half of a backup's
	// objects, and not its index.
	OffsiteUploading = "offsite-uploading"
)
