package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/faultpoint"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/pgdump"
	"github.com/project-vulcan/vulcan-backup/internal/restore"
	"github.com/project-vulcan/vulcan-backup/internal/staging"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// ValidateArchive is step 1 of a dry run (and of restores begun by an older
// worker): it finds the archive and its manifest, reads the whole archive
// against the manifest (hash of the archive, of every entry, safety of every
// entry), checks free space for staging and that the database answers. It
// changes nothing but this: a backup only in the off-site store is fetched
// into the backup directory first.
func (a *Activities) ValidateArchive(ctx context.Context, in workflows.RestoreInput) (workflows.RestorePlan, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	if err := a.fetchIfRemote(ctx, hb, in.Archive); err != nil {
		return workflows.RestorePlan{}, err
	}
	plan, m, err := a.readPlan(in.Archive)
	if err != nil {
		return workflows.RestorePlan{}, err
	}
	faultpoint.Hit(faultpoint.Validate)
	if err := VerifyArchiveFile(ctx, plan.Archive, m, func(p archive.Progress) { hb.set(p) }); err != nil {
		return workflows.RestorePlan{}, classify(err)
	}
	return plan, a.checkTargets(ctx, &plan)
}

// ValidateAndStage is step 1 of a restore that goes ahead. It makes the same
// checks as ValidateArchive, and reads the archive against the manifest by
// extracting it into the restore's staging directory: one pass over the
// archive both proves it sound and prepares step 4. A backup only in the
// off-site store is fetched into the backup directory first. Nothing in place is
// touched; on failure the workflow discards the staging directory. A retry
// after a complete extraction of the same backup reuses it.
func (a *Activities) ValidateAndStage(ctx context.Context, in workflows.StageInput) (workflows.StagedPlan, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	if err := a.fetchIfRemote(ctx, hb, in.Archive); err != nil {
		return workflows.StagedPlan{}, err
	}
	plan, m, err := a.readPlan(in.Archive)
	if err != nil {
		return workflows.StagedPlan{}, err
	}
	// Space and database first: a restore that cannot go ahead writes nothing.
	// A retried attempt counts the space its earlier staged copy takes as
	// free: the copy is replaced, not added to.
	tree := staging.Tree{Root: a.Root, ID: in.RestoreID}
	if plan.StagedBytes, err = fsutil.UsedBytes(tree.Dir()); err != nil {
		return workflows.StagedPlan{Plan: plan}, classify(err)
	}
	if err := a.checkTargets(ctx, &plan); err != nil {
		return workflows.StagedPlan{Plan: plan}, err
	}
	faultpoint.Hit(faultpoint.Validate)
	if err := checkArchiveSize(plan.Archive, m); err != nil {
		return workflows.StagedPlan{Plan: plan}, classify(err)
	}
	out := workflows.StagedPlan{Plan: plan, Staged: workflows.StorageOutput{Paths: m.Paths}}
	rep, err := a.job(in.RestoreID).Stage(ctx, a.progress(hb), plan.Archive, m, true)
	if err != nil {
		return out, classify(err)
	}
	out.Staged.Files, out.Staged.Bytes = rep.Files, rep.Bytes
	if out.Staged.Files == 0 { // staged by an earlier attempt
		out.Staged.Files, out.Staged.Bytes = plan.Files, plan.Bytes
	}
	return out, nil
}

// PrepareUndo is step 1 of an undo (restore --undo): it borrows the
// pre-restore copies restore in.Undo kept and describes them for the steps
// that follow, in a manifest in the undo's staging directory. It checks the
// database answers first; every refusal comes before anything moves, and on
// failure the workflow's discard gives back what was borrowed.
func (a *Activities) PrepareUndo(ctx context.Context, in workflows.StageInput) (workflows.StagedPlan, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	if !manifest.ValidID(in.Undo) || in.Undo == in.RestoreID {
		return workflows.StagedPlan{}, badInput("restore --undo %q: not the id of an earlier restore (YYYYMMDD_HHMMSS)", in.Undo)
	}
	plan := workflows.RestorePlan{Kind: string(manifest.KindUndo), BackupID: "undo-" + in.Undo,
		Services: a.Services.Name(), UndoWindow: a.UndoWindow}
	if a.DB != nil {
		plan.Database = a.DB.String()
	}
	if err := a.checkTargets(ctx, &plan); err != nil {
		return workflows.StagedPlan{Plan: plan}, err
	}
	job := a.job(in.RestoreID)
	m, err := job.Undo(ctx, in.Undo)
	if errors.Is(err, restore.ErrNothingToUndo) || errors.Is(err, restore.ErrRefused) {
		return workflows.StagedPlan{Plan: plan}, badInput("restore --undo %s: %v", in.Undo, err)
	}
	if err != nil {
		return workflows.StagedPlan{Plan: plan}, classify(fmt.Errorf("undo restore %s: %w", in.Undo, err))
	}
	plan.Manifest, plan.CreatedAt, plan.Paths = job.ManifestPath(), m.CreatedAt, m.Paths
	plan.Files, plan.Bytes, plan.HasDatabase = m.FileCount(), m.TotalBytes, m.Database != nil
	if m.Database == nil {
		plan.Database, plan.DatabaseNote = "", "restore "+in.Undo+" did not restore the database: it is left as it is"
	}
	return workflows.StagedPlan{Plan: plan, Staged: workflows.StorageOutput{Paths: m.Paths, Files: plan.Files, Bytes: plan.Bytes}}, nil
}

// readPlan finds the backup named by archiveName, reads its manifest and
// describes the restore; it reads nothing of the archive.
func (a *Activities) readPlan(archiveName string) (workflows.RestorePlan, *manifest.Manifest, error) {
	archivePath, manifestPath, err := a.Backups.ResolveForRestore(a.Root, archiveName)
	if err != nil {
		return workflows.RestorePlan{}, nil, badInput("restore %s: %v", archiveName, err)
	}
	m, err := a.manifests.Read(manifestPath)
	if err == nil {
		err = m.CheckBackup()
	}
	if err != nil {
		return workflows.RestorePlan{}, nil, classify(err)
	}
	plan := workflows.RestorePlan{
		Archive: archivePath, Manifest: manifestPath, BackupID: m.ID, Kind: string(m.Kind), CreatedAt: m.CreatedAt,
		Paths: m.Paths, Bytes: m.TotalBytes, HasDatabase: m.Database != nil, Services: a.Services.Name(),
		NeededBytes: m.TotalBytes, UndoWindow: a.UndoWindow,
	}
	if err := a.checkManifestPaths(m); err != nil {
		return workflows.RestorePlan{}, nil, err
	}
	plan.Files = m.FileCount()
	for _, e := range m.Files {
		if archive.SetID(e.Mode) {
			plan.SetIDFiles = append(plan.SetIDFiles, e.Path)
		}
	}
	switch {
	case m.Database == nil:
		plan.DatabaseNote = "the backup holds no database dump: the database is left as it is"
	case a.DB == nil:
		plan.DatabaseNote = "DATABASE_URL is not set: the backup's database dump is not restored"
	default:
		plan.Database = a.DB.String()
	}
	return plan, m, nil
}

// checkManifestPaths refuses a manifest whose paths are not among the
// configured ones (VULCAN_PATHS): step 4 renames every path it names, and
// the backup directory, the state directory or the root itself must never
// be among them.
func (a *Activities) checkManifestPaths(m *manifest.Manifest) error {
	backups, _ := filepath.Rel(a.Root, a.Backups.Path)
	for _, p := range m.Paths {
		clean := path.Clean(p)
		switch {
		case !slices.Contains(a.Paths, p) || clean != p:
			return badInput("backup %s names path %q, which is not among VULCAN_PATHS %v: refused", m.ID, p, a.Paths)
		case clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || path.IsAbs(clean):
			return badInput("backup %s names path %q, outside the root: refused", m.ID, p)
		case clean == filepath.ToSlash(backups) || strings.HasPrefix(filepath.ToSlash(backups)+"/", clean+"/") || clean == ".vulcan":
			return badInput("backup %s names path %q, which holds the backups or the worker's state: refused", m.ID, p)
		}
	}
	return nil
}

// checkTargets checks that the database to restore into answers and that
// there is room to stage the backup; it records the free space in plan.
func (a *Activities) checkTargets(ctx context.Context, plan *workflows.RestorePlan) error {
	if plan.Database != "" {
		if err := a.DB.Ping(ctx); err != nil {
			return classify(fmt.Errorf("database to restore into: %w", err))
		}
	}
	free, err := fsutil.FreeBytes(a.Root)
	if err != nil {
		return classify(err)
	}
	plan.FreeBytes = free
	// Staging holds a full copy beside the current one; keep a margin.
	if need := plan.NeededBytes + plan.NeededBytes/20 + 64<<20; free+plan.StagedBytes < need {
		return errNoSpace("restore needs about %d MiB free under %s for staging, %d MiB are free", need>>20, a.Root, free>>20)
	}
	return nil
}

// checkArchiveSize fails at once, as an integrity error, when the archive at
// path is not the size the manifest records.
func checkArchiveSize(path string, m *manifest.Manifest) error {
	if st, err := os.Stat(path); err == nil && st.Size() != m.Archive.Size {
		return &archive.EntryError{Kind: archive.ErrIntegrity, Path: path,
			Reason: fmt.Sprintf("archive is %d bytes, the manifest says %d (truncated or replaced); checksum not matched", st.Size(), m.Archive.Size)}
	}
	return nil
}

// VerifyArchiveFile checks the archive at path against m.
func VerifyArchiveFile(ctx context.Context, path string, m *manifest.Manifest, progress func(archive.Progress)) error {
	f, err := os.Open(path) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	if err := checkArchiveSize(path, m); err != nil {
		return err
	}
	if _, err := archive.Verify(ctx, f, m, progress); err != nil {
		return err
	}
	return nil
}

// RunningServices lists the services that run now; the workflow keeps the
// list and stops and starts exactly those.
func (a *Activities) RunningServices(ctx context.Context) ([]string, error) {
	names, err := a.Services.Running(ctx)
	if err != nil {
		return nil, fmt.Errorf("services (%s): %w", a.Services.Name(), err)
	}
	return names, nil
}

// StopServices stops the named services.
func (a *Activities) StopServices(ctx context.Context, names []string) error {
	hb := startHeartbeat(ctx)
	defer hb.end()
	if err := a.Services.Stop(ctx, names); err != nil {
		return fmt.Errorf("stop services (%s): %w", a.Services.Name(), err)
	}
	faultpoint.Hit(faultpoint.ServicesStopped)
	if len(names) > 0 {
		a.log(ctx).Info("services stopped", "services", names)
	}
	return nil
}

// StartServices starts the named services and waits until they are healthy.
func (a *Activities) StartServices(ctx context.Context, names []string) error {
	hb := startHeartbeat(ctx)
	defer hb.end()
	if err := a.Services.Start(ctx, names); err != nil {
		return fmt.Errorf("start services (%s): %w", a.Services.Name(), err)
	}
	if len(names) > 0 {
		a.log(ctx).Info("services started", "services", names)
	}
	return nil
}

// RestoreStorage is step 4: swap the staged copy into place (staging it
// first where step 1's copy is incomplete). A retried attempt after the swap
// has begun only completes the swap.
func (a *Activities) RestoreStorage(ctx context.Context, in workflows.StepInput) (workflows.StorageOutput, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	m, err := a.manifests.Read(in.Manifest)
	if err != nil {
		return workflows.StorageOutput{}, classify(err)
	}
	out := workflows.StorageOutput{Paths: m.Paths}
	rep, err := a.job(in.RestoreID).SwapStorage(ctx, a.progress(hb), in.Archive, m)
	if err != nil {
		return out, classify(fmt.Errorf("restore storage: %w", err))
	}
	out.Files, out.Bytes = rep.Files, rep.Bytes
	a.log(ctx).Info("storage restored", "paths", m.Paths, "restore_id", in.RestoreID)
	return out, nil
}

// StageDatabase loads the backup's dump into a fresh database
// (<db>_restore_<id>) and checks its row counts while the application still
// uses the current one (beside the emergency backup); step 5 then only
// renames. Where the role may not create databases it stages nothing and
// step 5 loads in place.
func (a *Activities) StageDatabase(ctx context.Context, in workflows.StepInput) (workflows.DatabaseOutput, error) {
	m, err := a.manifests.Read(in.Manifest)
	if err != nil {
		return workflows.DatabaseOutput{}, classify(err)
	}
	if m.Database == nil || a.DB == nil {
		return workflows.DatabaseOutput{Mode: "skipped", Skipped: true}, nil
	}
	hb := startHeartbeat(ctx)
	defer hb.end()
	mode, err := a.job(in.RestoreID).StageDatabase(ctx, a.progress(hb), in.Archive, m)
	if err != nil {
		return workflows.DatabaseOutput{}, classify(fmt.Errorf("stage database: %w", err))
	}
	if mode == pgdump.ModeInPlace {
		a.log(ctx).Warn("a fresh database cannot be created here; step 5 will restore in place")
	}
	return workflows.DatabaseOutput{Mode: mode}, nil
}

// DiscardStaging removes what steps 1 and 2 prepared, for a restore that
// stops before anything was swapped: the staging directory and the fresh
// database. Once a swap has happened it leaves both to the swap's own undo.
func (a *Activities) DiscardStaging(ctx context.Context, in workflows.StepInput) error {
	hb := startHeartbeat(ctx) // removing a large staged tree takes a while
	defer hb.end()
	return classify(a.job(in.RestoreID).Discard(ctx))
}

// RestoreDatabase is step 5: swap in the database step 2 loaded, or load the
// dump into a fresh database and swap it in; where renaming is not allowed,
// load it in place in one transaction (see restore.Job.SwapDatabase).
func (a *Activities) RestoreDatabase(ctx context.Context, in workflows.StepInput) (workflows.DatabaseOutput, error) {
	m, err := a.manifests.Read(in.Manifest)
	if err != nil {
		return workflows.DatabaseOutput{}, classify(err)
	}
	if m.Database == nil {
		return workflows.DatabaseOutput{Mode: "skipped", Skipped: true, Note: "the backup holds no database dump"}, nil
	}
	if a.DB == nil {
		return workflows.DatabaseOutput{Mode: "skipped", Skipped: true, Note: "DATABASE_URL is not set: database not restored"}, nil
	}
	hb := startHeartbeat(ctx)
	defer hb.end()
	mode, err := a.job(in.RestoreID).SwapDatabase(ctx, a.progress(hb), in.Archive, m)
	if err != nil {
		return workflows.DatabaseOutput{}, classify(fmt.Errorf("restore database (%s): %w", mode, err))
	}
	a.log(ctx).Info("database restored", "mode", mode, "database", a.DB.String())
	out := workflows.DatabaseOutput{Mode: mode}
	if mode == pgdump.ModeInPlace {
		out.Note = "renaming databases is not allowed here: restored in place"
	}
	return out, nil
}

// job is the restore with id, as the domain package sees it.
func (a *Activities) job(id string) restore.Job {
	return restore.Job{Tree: staging.Tree{Root: a.Root, ID: id}, DB: a.DB}
}

// progress reports a domain step's progress through hb, and stops it once
// it moves nothing for the stall timeout.
func (a *Activities) progress(hb *heartbeat) restore.Progress {
	return heartbeatProgress{hb: hb, limit: a.stallTimeout()}
}

type heartbeatProgress struct {
	hb    *heartbeat
	limit time.Duration
}

func (p heartbeatProgress) Set(v any) { p.hb.set(v) }

func (p heartbeatProgress) Watch(ctx context.Context, what string) (context.Context, func()) {
	return p.hb.watch(ctx, p.limit, what)
}

// VerifyRestore is step 7 (and the check after a rollback): files against the
// manifest, row counts against the manifest, services healthy. Differences
// are returned as problems; the workflow decides what they mean.
func (a *Activities) VerifyRestore(ctx context.Context, in workflows.VerifyInput) (workflows.VerifyOutput, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	m, err := a.manifests.Read(a.abs(in.Manifest))
	if err != nil {
		return workflows.VerifyOutput{}, classify(err)
	}
	faultpoint.Hit(faultpoint.BeforeVerify)
	var out workflows.VerifyOutput
	// An undo's manifest describes the kept copies by their layout alone:
	// it has no checksums to read the files back against.
	check := archive.CheckTree
	if in.LayoutOnly || m.Kind == manifest.KindUndo {
		check = archive.CheckTreeLayout
	}
	// The three checks are independent and run at once (the files on the
	// disk, the rows in PostgreSQL, the services); their problems are
	// listed in this order.
	checkRows := m.Database != nil && a.DB != nil && !in.SkipDatabase
	var (
		wg                      sync.WaitGroup
		rep                     *archive.Report
		treeErr, rowsErr, upErr error
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		rep, treeErr = check(ctx, a.Root, m, func(p archive.Progress) { hb.set(p) })
	}()
	go func() {
		defer wg.Done()
		if checkRows {
			rowsErr = a.DB.CheckCounts(ctx, m.Database.Tables)
		}
	}()
	upErr = a.Services.Healthy(ctx, in.Services)
	wg.Wait()

	var mis *archive.TreeMismatch
	switch {
	case errors.As(treeErr, &mis):
		out.Problems = append(out.Problems, mis.Error())
	case treeErr != nil:
		return out, classify(treeErr)
	}
	if rep != nil {
		out.Files, out.Bytes = rep.Files, rep.Bytes
	}
	if checkRows {
		out.Tables = len(m.Database.Tables)
		if rowsErr != nil {
			if !errors.Is(rowsErr, pgdump.ErrRowCounts) {
				return out, classify(rowsErr)
			}
			out.Problems = append(out.Problems, rowsErr.Error())
		}
	}
	if upErr != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("services not healthy: %v", upErr))
	}
	return out, nil
}

// AnalyzeRestored gives a database the restore loaded its planner statistics
// (VACUUM (ANALYZE)), once step 7 has passed; a failure is logged, as
// autovacuum will get to it.
func (a *Activities) AnalyzeRestored(ctx context.Context, in workflows.StepInput) error {
	if !a.job(in.RestoreID).Loaded() {
		return nil
	}
	hb := startHeartbeat(ctx)
	defer hb.end()
	if err := a.DB.Analyze(ctx); err != nil {
		a.log(ctx).Warn("analyzing the restored database failed; autovacuum will do it", "error", err)
	}
	return nil
}

// FinishRestore removes what a verified restore kept until the end of its
// undo window: the pre-restore copies, the staging directory and the kept
// database.
func (a *Activities) FinishRestore(ctx context.Context, in workflows.StepInput) error {
	hb := startHeartbeat(ctx) // removing a large tree takes a while
	defer hb.end()
	job := a.job(in.RestoreID)
	err := job.Finish(ctx)
	var borrowed *restore.BorrowedError
	if !errors.As(err, &borrowed) {
		return classify(err)
	}
	// An undo borrowed the copies: remove what it left only while no
	// operation runs, so none is in the middle of using them.
	holder := workflows.LockRequest{Operation: "restore cleanup", WorkflowID: "cleanup-" + in.RestoreID}
	if activity.IsActivity(ctx) {
		holder.WorkflowID = activity.GetInfo(ctx).WorkflowExecution.ID
	}
	if _, err := a.AcquireLock(ctx, holder); err != nil {
		return temporal.NewApplicationError(fmt.Sprintf("waiting for the undo %s to end: %v", borrowed.By, err), "UndoRunning")
	}
	defer func() {
		if err := a.ReleaseLock(context.WithoutCancel(ctx), holder); err != nil {
			a.log(ctx).Error("releasing the operation lock failed", "error", err)
		}
	}()
	return classify(job.FinishBorrowed(ctx))
}

// RollbackStorage undoes step 4: the pre-restore copies go back in place;
// a path whose copy is missing is restored from the emergency backup.
func (a *Activities) RollbackStorage(ctx context.Context, in workflows.RollbackInput) (workflows.RollbackOutput, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	var emergency *manifest.Manifest
	var emergencyArchive string
	if in.EmergencyManifest != "" {
		m, err := a.manifests.Read(a.abs(in.EmergencyManifest))
		if err != nil {
			return workflows.RollbackOutput{}, classify(err)
		}
		emergency, emergencyArchive = m, a.Backups.ArchivePath(m.ID)
	}
	action, err := a.job(in.RestoreID).RollBackStorage(ctx, a.progress(hb), emergencyArchive, emergency)
	if err != nil {
		return workflows.RollbackOutput{}, classify(fmt.Errorf("roll back storage: %w", err))
	}
	if action != "swapped back" {
		a.log(ctx).Warn("a pre-restore copy was missing", "action", action)
	}
	return workflows.RollbackOutput{Action: action}, nil
}

// RollbackDatabase undoes step 5 (see restore.Job.RollBackDatabase).
func (a *Activities) RollbackDatabase(ctx context.Context, in workflows.RollbackInput) (workflows.RollbackOutput, error) {
	if a.DB == nil {
		return workflows.RollbackOutput{Action: "no database configured"}, nil
	}
	hb := startHeartbeat(ctx)
	defer hb.end()
	action, err := a.job(in.RestoreID).RollBackDatabase(ctx, a.progress(hb))
	if err != nil {
		return workflows.RollbackOutput{}, classify(fmt.Errorf("roll back database: %w", err))
	}
	return workflows.RollbackOutput{Action: action}, nil
}

func errNoSpace(format string, args ...any) error {
	return classify(fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), syscall.ENOSPC))
}

// FreeRestoreID returns the first restore id from wanted on, a second at a
// time, that no staging directory, pre-restore copy or database is named
// for. It runs under the operation lock, so no other restore takes an id
// meanwhile, and it creates nothing: a retry gives the same answer.
func (a *Activities) FreeRestoreID(ctx context.Context, wanted string) (string, error) {
	t, err := manifest.ParseID(wanted)
	if err != nil {
		return "", badInput("restore id %q is not YYYYMMDD_HHMMSS", wanted)
	}
	for i := range maxRestoreIDTries {
		id := workflows.RestoreIDFor(t.Add(time.Duration(i) * time.Second))
		taken, err := a.job(id).Taken(ctx, a.Paths)
		if err != nil {
			return "", classify(fmt.Errorf("look for a free restore id: %w", err))
		}
		if !taken {
			return id, nil
		}
	}
	return "", badInput("every restore id of the hour from %s is taken: remove the .vulcan-restore-* directories and pre-restore copies no restore needs", wanted)
}

// maxRestoreIDTries bounds FreeRestoreID's search, an hour of seconds.
const maxRestoreIDTries = 3600
