package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/faultpoint"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/pgdump"
	"github.com/project-vulcan/vulcan-backup/internal/staging"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// dbModeMarker is the staging file that records how the database was restored.
const dbModeMarker = "database-mode"

// ValidateArchive is step 1 of a dry run (and of restores begun by an older
// worker): it finds the archive and its manifest, reads the whole archive
// against the manifest (hash of the archive, of every entry, safety of every
// entry), checks free space for staging and that the database answers. It
// changes nothing.
func (a *Activities) ValidateArchive(ctx context.Context, in workflows.RestoreInput) (workflows.RestorePlan, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
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
// archive both proves it sound and prepares step 4. Nothing in place is
// touched; on failure the workflow discards the staging directory. A retry
// after a complete extraction of the same backup reuses it.
func (a *Activities) ValidateAndStage(ctx context.Context, in workflows.StageInput) (workflows.StagedPlan, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
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
	if err := a.stageUnlessSwapped(ctx, hb, tree, plan.Archive, m, true, &out.Staged); err != nil {
		return out, classify(err)
	}
	if out.Staged.Files == 0 { // staged by an earlier attempt
		out.Staged.Files, out.Staged.Bytes = plan.Files, plan.Bytes
	}
	return out, nil
}

// readPlan finds the backup named by archiveName, reads its manifest and
// describes the restore; it reads nothing of the archive.
func (a *Activities) readPlan(archiveName string) (workflows.RestorePlan, *manifest.Manifest, error) {
	archivePath, manifestPath, err := a.Backups.ResolveForRestore(a.Root, archiveName)
	if err != nil {
		return workflows.RestorePlan{}, nil, badInput("restore %s: %v", archiveName, err)
	}
	m, err := a.manifests.Read(manifestPath)
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
	f, err := os.Open(path)
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

// stageUnlessSwapped extracts the paths of m into tree unless the swap has
// begun or, with reuse, a complete staged copy of this backup is already
// there; out gets the counts of what it extracted.
func (a *Activities) stageUnlessSwapped(ctx context.Context, hb *heartbeat, tree staging.Tree, archivePath string, m *manifest.Manifest, reuse bool, out *workflows.StorageOutput) error {
	if tree.SwapStarted() {
		return nil
	}
	if staged, _ := os.ReadFile(tree.MarkerPath(storageStagedMarker)); reuse && string(staged) == m.ID {
		return nil
	}
	rep, err := a.stage(ctx, hb, tree, archivePath, m)
	if err != nil {
		return err
	}
	out.Files, out.Bytes = rep.Files, rep.Bytes
	return nil
}

// stage extracts the paths of m into tree and records that the staged copy
// is complete.
func (a *Activities) stage(ctx context.Context, hb *heartbeat, tree staging.Tree, archivePath string, m *manifest.Manifest) (*archive.Report, error) {
	if err := os.Remove(tree.MarkerPath(storageStagedMarker)); err != nil && !isNotExist(err) {
		return nil, err
	}
	if err := tree.ResetPaths(m.Paths); err != nil {
		return nil, err
	}
	rep, err := a.extract(ctx, hb, archivePath, m, tree.Dir())
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(tree.MarkerPath(storageStagedMarker), []byte(m.ID), 0o600); err != nil {
		return nil, err
	}
	return rep, nil
}

// storageStagedMarker is the staging file that says the staged copy is complete.
const storageStagedMarker = "storage-staged"

// RestoreStorage is step 4: swap the staged copy into place. The copy was
// extracted (and every entry hashed) by StageStorage; a restore begun by an
// older worker, or whose staged copy is incomplete, extracts it here first.
// A retried attempt after the swap has begun only completes the swap.
func (a *Activities) RestoreStorage(ctx context.Context, in workflows.StepInput) (workflows.StorageOutput, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	m, err := a.manifests.Read(in.Manifest)
	if err != nil {
		return workflows.StorageOutput{}, classify(err)
	}
	tree := staging.Tree{Root: a.Root, ID: in.RestoreID}
	out := workflows.StorageOutput{Paths: m.Paths}
	if err := a.stageUnlessSwapped(ctx, hb, tree, in.Archive, m, true, &out); err != nil {
		return out, classify(fmt.Errorf("restore storage: %w", err))
	}
	if err := tree.Swap(m.Paths); err != nil {
		return out, classify(fmt.Errorf("restore storage: %w", err))
	}
	faultpoint.Hit(faultpoint.StorageSwapped)
	a.log(ctx).Info("storage restored", "paths", m.Paths, "restore_id", in.RestoreID)
	return out, nil
}

// extract writes the backed-up paths of the archive into dest; the dump is
// left to the database steps (see stagedDump).
func (a *Activities) extract(ctx context.Context, hb *heartbeat, archivePath string, m *manifest.Manifest, dest string) (*archive.Report, error) {
	return a.extractPaths(ctx, hb, archivePath, m, dest, nil)
}

// extractPaths is extract limited to paths (all of them when nil).
func (a *Activities) extractPaths(ctx context.Context, hb *heartbeat, archivePath string, m *manifest.Manifest, dest string, paths []string) (*archive.Report, error) {
	f, err := os.Open(archivePath)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	include := func(name string) bool {
		if m.Database != nil && name == m.Database.ArchivePath {
			return false
		}
		if paths == nil {
			return true
		}
		for _, p := range paths {
			if name == p || strings.HasPrefix(name, p+"/") {
				return true
			}
		}
		return false
	}
	progress := func(p archive.Progress) {
		hb.set(p)
		if p.Files > 1 {
			faultpoint.Hit(faultpoint.Extracting)
		}
	}
	return archive.Extract(ctx, f, m, archive.ExtractOptions{Dest: dest, Include: include, Progress: progress})
}

// stagedDump returns a copy of the backup's dump that matches the manifest:
// the standalone dump in the backup directory's database/, or else one
// extracted from the archive into the staging directory.
func (a *Activities) stagedDump(ctx context.Context, hb *heartbeat, tree staging.Tree, archivePath string, m *manifest.Manifest) (string, error) {
	// The standalone copy beside the archive, then one extracted earlier.
	for _, p := range []string{filepath.Join(filepath.Dir(archivePath), filepath.FromSlash(m.Database.File)), tree.Staged(m.Database.ArchivePath)} {
		if sum, _, err := archive.HashFile(p); err == nil && sum == m.Database.SHA256 {
			return p, nil
		}
	}
	dir := tree.MarkerPath("dump")
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.Open(archivePath)
	if err != nil {
		return "", fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	only := func(name string) bool {
		return name == m.Database.ArchivePath || strings.HasPrefix(m.Database.ArchivePath, name+"/")
	}
	if _, err := archive.Extract(ctx, f, m, archive.ExtractOptions{Dest: dir, Include: only, Progress: func(p archive.Progress) { hb.set(p) }}); err != nil {
		return "", err
	}
	return dir + "/" + path.Clean(m.Database.ArchivePath), nil
}

// RestoreDatabase is step 5: load the dump into a fresh database, check its
// row counts, and swap it in by renaming; where renaming is not allowed, load
// it in place in one transaction. The chosen mode is recorded in the staging
// dbStagedMarker is the staging file that says the fresh database is loaded
// and checked, ready to be swapped in.
const dbStagedMarker = "database-staged"

func (a *Activities) loadProgress(hb *heartbeat, m *manifest.Manifest) func(int64) {
	return func(n int64) {
		hb.set(map[string]int64{"bytes": n, "of": m.Database.Size})
		faultpoint.Hit(faultpoint.DatabaseLoading)
	}
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
	tree := staging.Tree{Root: a.Root, ID: in.RestoreID}
	if tree.SwapStarted() || a.recordedMode(tree) == pgdump.ModeInPlace {
		return workflows.DatabaseOutput{Mode: a.recordedMode(tree)}, nil
	}
	if err := os.MkdirAll(tree.Dir(), 0o700); err != nil {
		return workflows.DatabaseOutput{}, classify(err)
	}
	if err := os.Remove(tree.MarkerPath(dbStagedMarker)); err != nil && !isNotExist(err) {
		return workflows.DatabaseOutput{}, classify(err)
	}
	dump, err := a.stagedDump(ctx, hb, tree, in.Archive, m)
	if err != nil {
		return workflows.DatabaseOutput{}, classify(fmt.Errorf("stage database: %w", err))
	}
	if err := fsutil.WriteFileAtomic(tree.MarkerPath(dbModeMarker), []byte(pgdump.ModeRename), 0o600); err != nil {
		return workflows.DatabaseOutput{}, classify(err)
	}
	wctx, stop := hb.watch(ctx, a.stallTimeout(), "the load of the dump")
	err = stalled(wctx, a.DB.LoadFresh(wctx, dump, in.RestoreID, m.Database.Tables, a.loadProgress(hb, m)))
	stop()
	if errors.Is(err, pgdump.ErrRenameNotAllowed) {
		// Step 5 will load in place; nothing was created.
		_ = os.Remove(tree.MarkerPath(dbModeMarker))
		a.log(ctx).Warn("a fresh database cannot be created here; step 5 will restore in place", "reason", err)
		return workflows.DatabaseOutput{Mode: pgdump.ModeInPlace}, nil
	}
	if err != nil {
		return workflows.DatabaseOutput{}, classify(fmt.Errorf("stage database: %w", err))
	}
	if err := fsutil.WriteFileAtomic(tree.MarkerPath(dbStagedMarker), []byte(m.ID), 0o600); err != nil {
		return workflows.DatabaseOutput{}, classify(err)
	}
	return workflows.DatabaseOutput{Mode: pgdump.ModeRename}, nil
}

// DiscardStaging removes what StageStorage and StageDatabase prepared, for a
// restore that stops before anything was swapped: the staging directory and
// the fresh database. Once a swap has happened it leaves both to the swap's
// own undo.
func (a *Activities) DiscardStaging(ctx context.Context, in workflows.StepInput) error {
	hb := startHeartbeat(ctx) // removing a large staged tree takes a while
	defer hb.end()
	tree := staging.Tree{Root: a.Root, ID: in.RestoreID}
	// The rename mode is recorded before a fresh database is created: without
	// it there is none to drop, and a database that is down (the reason step 1
	// failed, say) does not hold up the discard.
	if a.DB != nil && a.recordedMode(tree) == pgdump.ModeRename {
		if err := a.DB.DropUnswapped(ctx, in.RestoreID); err != nil {
			return classify(fmt.Errorf("discard staged database: %w", err))
		}
	}
	if err := tree.Discard(); err != nil {
		return classify(err)
	}
	return nil
}

// directory first, so a rollback knows what to undo even after a crash.
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
	tree := staging.Tree{Root: a.Root, ID: in.RestoreID}
	if staged, _ := os.ReadFile(tree.MarkerPath(dbStagedMarker)); string(staged) == m.ID {
		if err := a.DB.SwapIn(ctx, in.RestoreID); err != nil {
			return workflows.DatabaseOutput{}, classify(fmt.Errorf("restore database: %w", err))
		}
		a.log(ctx).Info("database restored", "mode", pgdump.ModeRename, "database", a.DB.String())
		return workflows.DatabaseOutput{Mode: pgdump.ModeRename}, nil
	}
	dump, err := a.stagedDump(ctx, hb, tree, in.Archive, m)
	if err != nil {
		return workflows.DatabaseOutput{}, classify(fmt.Errorf("restore database: %w", err))
	}
	progress := a.loadProgress(hb, m)
	mode := a.recordedMode(tree)
	if mode != pgdump.ModeInPlace {
		if err := fsutil.WriteFileAtomic(tree.MarkerPath(dbModeMarker), []byte(pgdump.ModeRename), 0o600); err != nil {
			return workflows.DatabaseOutput{}, classify(err)
		}
		wctx, stop := hb.watch(ctx, a.stallTimeout(), "the load of the dump")
		err = stalled(wctx, a.DB.RestoreFresh(wctx, dump, in.RestoreID, m.Database.Tables, progress))
		stop()
		if err == nil {
			a.log(ctx).Info("database restored", "mode", pgdump.ModeRename, "database", a.DB.String())
			return workflows.DatabaseOutput{Mode: pgdump.ModeRename}, nil
		}
		if !errors.Is(err, pgdump.ErrRenameNotAllowed) {
			return workflows.DatabaseOutput{}, classify(fmt.Errorf("restore database: %w", err))
		}
		a.log(ctx).Warn("fresh database and rename not possible; restoring in place", "reason", err)
	}
	// What a rollback puts back is the database as it is now, with the
	// services stopped: the emergency backup is older by every write made
	// until step 3. A retried attempt keeps the copy its predecessor took,
	// which may be all that is left of the state before the load.
	if err := a.keepDatabaseBefore(ctx, hb, tree); err != nil {
		return workflows.DatabaseOutput{}, classify(fmt.Errorf("restore database in place: keep the current state: %w", err))
	}
	if err := fsutil.WriteFileAtomic(tree.MarkerPath(dbModeMarker), []byte(pgdump.ModeInPlace), 0o600); err != nil {
		return workflows.DatabaseOutput{}, classify(err)
	}
	wctx, stop := hb.watch(ctx, a.stallTimeout(), "the in-place load of the dump")
	err = stalled(wctx, a.DB.RestoreInPlace(wctx, dump, m.Database.Tables, progress))
	stop()
	if err != nil {
		return workflows.DatabaseOutput{}, classify(fmt.Errorf("restore database in place: %w", err))
	}
	a.log(ctx).Info("database restored", "mode", pgdump.ModeInPlace, "database", a.DB.String())
	return workflows.DatabaseOutput{Mode: pgdump.ModeInPlace, Note: "renaming databases is not allowed here: restored in place"}, nil
}

// beforeDump is the staging file that holds the database as it was when an
// in-place load began; beforeRecord holds its checksum and row counts.
const (
	beforeDump   = "database-before.sql"
	beforeRecord = "database-before.json"
)

// keepDatabaseBefore dumps the database into the staging directory, unless
// an earlier attempt did.
func (a *Activities) keepDatabaseBefore(ctx context.Context, hb *heartbeat, tree staging.Tree) error {
	if ok, err := fsutil.Exists(tree.MarkerPath(beforeRecord)); err != nil || ok {
		return err
	}
	tmp := fsutil.TempName(tree.MarkerPath(beforeDump))
	wctx, stop := hb.watch(ctx, a.stallTimeout(), "pg_dump")
	res, err := pgdump.DumpToFile(wctx, a.DB, tmp, func(n int64) { hb.set(map[string]int64{"bytes": n}) })
	err = stalled(wctx, err)
	stop()
	if err != nil {
		return err
	}
	if err := fsutil.Commit(tmp, tree.MarkerPath(beforeDump)); err != nil {
		return err
	}
	rec, _ := json.Marshal(manifest.Database{SHA256: res.SHA256, Size: res.Size, Tables: res.Tables})
	return fsutil.WriteFileAtomic(tree.MarkerPath(beforeRecord), rec, 0o600)
}

// rollBackInPlace reloads the copy keepDatabaseBefore took. Without one the
// load never began, and there is nothing to undo.
func (a *Activities) rollBackInPlace(ctx context.Context, hb *heartbeat, tree staging.Tree) (workflows.RollbackOutput, error) {
	data, err := os.ReadFile(tree.MarkerPath(beforeRecord))
	if isNotExist(err) {
		return workflows.RollbackOutput{Action: "nothing to undo: the in-place load had not begun"}, nil
	}
	if err != nil {
		return workflows.RollbackOutput{}, classify(err)
	}
	var rec manifest.Database
	if err := json.Unmarshal(data, &rec); err != nil {
		return workflows.RollbackOutput{}, fmt.Errorf("roll back database: %s: %w", tree.MarkerPath(beforeRecord), err)
	}
	dump := tree.MarkerPath(beforeDump)
	if sum, _, err := archive.HashFile(dump); err != nil || sum != rec.SHA256 {
		return workflows.RollbackOutput{}, fmt.Errorf("roll back database: the copy %s does not match its record (%v)", dump, err)
	}
	wctx, stop := hb.watch(ctx, a.stallTimeout(), "the in-place reload")
	err = stalled(wctx, a.DB.RestoreInPlace(wctx, dump, rec.Tables, func(n int64) { hb.set(n) }))
	stop()
	if err != nil {
		return workflows.RollbackOutput{}, classify(fmt.Errorf("roll back database in place: %w", err))
	}
	return workflows.RollbackOutput{Action: "reloaded the state before the restore in place"}, nil
}

func (a *Activities) recordedMode(tree staging.Tree) string {
	data, err := os.ReadFile(tree.MarkerPath(dbModeMarker))
	if err != nil {
		return ""
	}
	return string(data)
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
	check := archive.CheckTree
	if in.LayoutOnly {
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
	if a.DB == nil || a.recordedMode(staging.Tree{Root: a.Root, ID: in.RestoreID}) == "" {
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
	tree := staging.Tree{Root: a.Root, ID: in.RestoreID}
	if a.DB != nil {
		if err := a.DB.DropPreRestore(ctx, in.RestoreID); err != nil {
			return classify(fmt.Errorf("drop pre-restore database: %w", err))
		}
	}
	if err := tree.Cleanup(); err != nil {
		return classify(err)
	}
	return nil
}

// RollbackStorage undoes step 4: the pre-restore copies go back in place.
// Where a copy is missing, the path is restored from the emergency backup.
func (a *Activities) RollbackStorage(ctx context.Context, in workflows.RollbackInput) (workflows.RollbackOutput, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	tree := staging.Tree{Root: a.Root, ID: in.RestoreID}
	err := tree.SwapBack()
	if err == nil {
		faultpoint.Hit(faultpoint.RolledBackStorage)
		return workflows.RollbackOutput{Action: "swapped back"}, nil
	}
	var nc *staging.NoCopyError
	if !errors.As(err, &nc) || in.EmergencyManifest == "" {
		return workflows.RollbackOutput{}, classify(fmt.Errorf("roll back storage: %w", err))
	}
	a.log(ctx).Warn("pre-restore copy missing; restoring those paths from the emergency backup", "paths", nc.Paths)
	m, err := a.manifests.Read(a.abs(in.EmergencyManifest))
	if err != nil {
		return workflows.RollbackOutput{}, classify(err)
	}
	// The paths that were put back keep their newer copies; only the
	// missing ones come from the emergency backup, restored like a backup
	// with their own staging area.
	etree := staging.Tree{Root: a.Root, ID: in.RestoreID + "-rollback"}
	if !etree.SwapStarted() {
		if err := etree.Reset(); err != nil {
			return workflows.RollbackOutput{}, classify(err)
		}
		if _, err := a.extractPaths(ctx, hb, a.Backups.ArchivePath(m.ID), m, etree.Dir(), nc.Paths); err != nil {
			return workflows.RollbackOutput{}, classify(fmt.Errorf("roll back storage from emergency backup %s: %w", m.ID, err))
		}
	}
	if err := etree.Swap(nc.Paths); err != nil {
		return workflows.RollbackOutput{}, classify(err)
	}
	if err := etree.Cleanup(); err != nil {
		return workflows.RollbackOutput{}, classify(err)
	}
	if err := tree.Forget(); err != nil {
		return workflows.RollbackOutput{}, classify(err)
	}
	return workflows.RollbackOutput{Action: fmt.Sprintf("put back; %v restored from emergency backup %s", nc.Paths, m.ID)}, nil
}

// RollbackDatabase undoes step 5: after a rename swap the kept database is
// renamed back; after an in-place load the copy taken just before it (with
// the services stopped) is loaded in place.
func (a *Activities) RollbackDatabase(ctx context.Context, in workflows.RollbackInput) (workflows.RollbackOutput, error) {
	if a.DB == nil {
		return workflows.RollbackOutput{Action: "no database configured"}, nil
	}
	hb := startHeartbeat(ctx)
	defer hb.end()
	tree := staging.Tree{Root: a.Root, ID: in.RestoreID}
	if a.recordedMode(tree) == pgdump.ModeInPlace {
		return a.rollBackInPlace(ctx, hb, tree)
	}
	swapped, err := a.DB.SwapBack(ctx, in.RestoreID)
	if err != nil {
		return workflows.RollbackOutput{}, classify(fmt.Errorf("roll back database: %w", err))
	}
	faultpoint.Hit(faultpoint.RolledBackDatabase)
	if swapped {
		return workflows.RollbackOutput{Action: "renamed the kept database back"}, nil
	}
	return workflows.RollbackOutput{Action: "nothing to undo"}, nil
}

func errNoSpace(format string, args ...any) error {
	return classify(fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), syscall.ENOSPC))
}
