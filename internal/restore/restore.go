// Package restore holds what a restore knows beyond moving trees (staging)
// and loading dumps (pgdump): the small records in its staging directory
// that say how far it got (a complete staged copy, a loaded fresh database,
// the database's mode, the copy of the database taken before an in-place
// load), the choice between the rename swap and the in-place load, and the
// restore of lost paths from an emergency backup. It knows nothing of
// Temporal: the activities call it, report its progress and classify its
// errors. Every operation is idempotent, so a retried step carries on.
package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/faultpoint"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/pgdump"
	"github.com/project-vulcan/vulcan-backup/internal/staging"
)

// Progress receives a step's progress; Watch stops the context it returns
// when no progress arrives for too long (a stuck tool).
type Progress interface {
	Set(v any)
	Watch(ctx context.Context, what string) (watched context.Context, stop func())
}

// Job is one restore: its staging area and the database it restores into
// (nil without DATABASE_URL).
type Job struct {
	Tree staging.Tree
	DB   *pgdump.Target
}

// Files of the staging directory that record how far a restore got.
const (
	storageStaged = "storage-staged"       // the staged copy of backup <content> is complete
	dbStaged      = "database-staged"      // the fresh database holds backup <content>, checked
	dbMode        = "database-mode"        // rename or in-place, written before anything is loaded
	beforeDump    = "database-before.sql"  // the database as it was when an in-place load began
	beforeRecord  = "database-before.json" // its checksum and row counts
)

// Mode is the database mode recorded for the restore, or "".
func (j Job) Mode() string {
	data, err := os.ReadFile(j.Tree.MarkerPath(dbMode))
	if err != nil {
		return ""
	}
	return string(data)
}

func (j Job) mark(name, content string) error {
	return fsutil.WriteFileAtomic(j.Tree.MarkerPath(name), []byte(content), 0o600)
}

func (j Job) marked(name, content string) bool {
	data, err := os.ReadFile(j.Tree.MarkerPath(name))
	return err == nil && string(data) == content
}

func (j Job) unmark(name string) error {
	if err := os.Remove(j.Tree.MarkerPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Stage extracts the paths of m from the archive into the staging directory,
// every entry checked against the manifest as it is written, unless the swap
// has begun or (with reuse) a complete staged copy of this backup is there.
// It returns what it extracted (nothing when it reused).
func (j Job) Stage(ctx context.Context, p Progress, archivePath string, m *manifest.Manifest, reuse bool) (*archive.Report, error) {
	if j.Tree.SwapStarted() || (reuse && j.marked(storageStaged, m.ID)) {
		return &archive.Report{}, nil
	}
	if err := j.unmark(storageStaged); err != nil {
		return nil, err
	}
	if err := j.Tree.ResetPaths(m.Paths); err != nil {
		return nil, err
	}
	rep, err := extract(ctx, p, archivePath, m, j.Tree.Dir(), nil)
	if err != nil {
		return nil, err
	}
	return rep, j.mark(storageStaged, m.ID)
}

// extract writes the backed-up paths of the archive (only those under paths,
// when given) into dest; the dump is left to the database steps.
func extract(ctx context.Context, p Progress, archivePath string, m *manifest.Manifest, dest string, paths []string) (*archive.Report, error) {
	f, err := os.Open(archivePath) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
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
	progress := func(pr archive.Progress) {
		p.Set(pr)
		if pr.Files > 1 {
			faultpoint.Hit(faultpoint.Extracting)
		}
	}
	return archive.Extract(ctx, f, m, archive.ExtractOptions{Dest: dest, Include: include, Progress: progress})
}

// SwapStorage puts the staged copy in place (staging it first if needed).
func (j Job) SwapStorage(ctx context.Context, p Progress, archivePath string, m *manifest.Manifest) (*archive.Report, error) {
	rep, err := j.Stage(ctx, p, archivePath, m, true)
	if err != nil {
		return nil, err
	}
	if err := j.Tree.Swap(m.Paths); err != nil {
		return nil, err
	}
	faultpoint.Hit(faultpoint.StorageSwapped)
	return rep, nil
}

// dump is dumpFor with the restore's staging directory.
func (j Job) dump(ctx context.Context, p Progress, archivePath string, m *manifest.Manifest) (string, error) {
	return dumpFor(ctx, p, archivePath, m, j.Tree.Staged(m.Database.ArchivePath), j.Tree.MarkerPath("dump"))
}

// dumpFor returns a copy of the backup's dump that matches the manifest: the
// standalone dump beside the archive, the copy at staged, or one it extracts
// from the archive into dir.
func dumpFor(ctx context.Context, p Progress, archivePath string, m *manifest.Manifest, staged, dir string) (string, error) {
	for _, c := range []string{filepath.Join(filepath.Dir(archivePath), filepath.FromSlash(m.Database.File)), staged} {
		if sum, _, err := archive.HashFile(c); err == nil && sum == m.Database.SHA256 {
			return c, nil
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.Open(archivePath) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return "", fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	only := func(name string) bool {
		return name == m.Database.ArchivePath || strings.HasPrefix(m.Database.ArchivePath, name+"/")
	}
	if _, err := archive.Extract(ctx, f, m, archive.ExtractOptions{Dest: dir, Include: only, Progress: func(pr archive.Progress) { p.Set(pr) }}); err != nil {
		return "", err
	}
	return dir + "/" + path.Clean(m.Database.ArchivePath), nil
}

func loadProgress(p Progress, m *manifest.Manifest) func(int64) {
	return func(n int64) {
		p.Set(map[string]int64{"bytes": n, "of": m.Database.Size})
		faultpoint.Hit(faultpoint.DatabaseLoading)
	}
}

// StageDatabase loads the backup's dump into a fresh database
// (<db>_restore_<id>) and checks its row counts, while the application still
// uses the current one; SwapDatabase then only renames. Where the role may
// not create databases it stages nothing and returns ModeInPlace.
func (j Job) StageDatabase(ctx context.Context, p Progress, archivePath string, m *manifest.Manifest) (mode string, err error) {
	if j.Tree.SwapStarted() || j.Mode() == pgdump.ModeInPlace {
		return j.Mode(), nil
	}
	if j.marked(dbStaged, m.ID) { // by an earlier attempt, or borrowed by an undo
		return pgdump.ModeRename, nil
	}
	if err := os.MkdirAll(j.Tree.Dir(), 0o700); err != nil {
		return "", err
	}
	if err := j.unmark(dbStaged); err != nil {
		return "", err
	}
	dump, err := j.dump(ctx, p, archivePath, m)
	if err != nil {
		return "", err
	}
	// Recorded before a fresh database is created, so a discard knows
	// there may be one to drop.
	if err := j.mark(dbMode, pgdump.ModeRename); err != nil {
		return "", err
	}
	wctx, stop := p.Watch(ctx, "the load of the dump")
	err = Stalled(wctx, j.DB.LoadFresh(wctx, dump, j.Tree.ID, m.Database.Tables, loadProgress(p, m)))
	stop()
	if errors.Is(err, pgdump.ErrRenameNotAllowed) {
		return pgdump.ModeInPlace, j.unmark(dbMode) // nothing was created
	}
	if err != nil {
		return "", err
	}
	return pgdump.ModeRename, j.mark(dbStaged, m.ID)
}

// SwapDatabase is step 5: the database staged by StageDatabase is renamed
// into place; without one the dump is loaded into a fresh database and
// swapped in, and where renaming is not allowed it is loaded in place in one
// transaction, after a copy of the database as it is now (services stopped)
// is kept for the rollback. The mode is recorded before anything is loaded.
func (j Job) SwapDatabase(ctx context.Context, p Progress, archivePath string, m *manifest.Manifest) (mode string, err error) {
	if j.marked(dbStaged, m.ID) {
		return pgdump.ModeRename, j.DB.SwapIn(ctx, j.Tree.ID)
	}
	dump, err := j.dump(ctx, p, archivePath, m)
	if err != nil {
		return "", err
	}
	if j.Mode() != pgdump.ModeInPlace {
		if err := j.mark(dbMode, pgdump.ModeRename); err != nil {
			return "", err
		}
		wctx, stop := p.Watch(ctx, "the load of the dump")
		err = Stalled(wctx, j.DB.RestoreFresh(wctx, dump, j.Tree.ID, m.Database.Tables, loadProgress(p, m)))
		stop()
		if !errors.Is(err, pgdump.ErrRenameNotAllowed) {
			return pgdump.ModeRename, err
		}
	}
	// A retried attempt keeps the copy its predecessor took, which may be
	// all that is left of the state before the load.
	if err := j.keepBefore(ctx, p); err != nil {
		return "", fmt.Errorf("keep the current state: %w", err)
	}
	if err := j.mark(dbMode, pgdump.ModeInPlace); err != nil {
		return "", err
	}
	wctx, stop := p.Watch(ctx, "the in-place load of the dump")
	err = Stalled(wctx, j.DB.RestoreInPlace(wctx, dump, m.Database.Tables, loadProgress(p, m)))
	stop()
	return pgdump.ModeInPlace, err
}

// keepBefore dumps the database into the staging directory, unless an
// earlier attempt did.
func (j Job) keepBefore(ctx context.Context, p Progress) error {
	if ok, err := fsutil.Exists(j.Tree.MarkerPath(beforeRecord)); err != nil || ok {
		return err
	}
	tmp := fsutil.TempName(j.Tree.MarkerPath(beforeDump))
	wctx, stop := p.Watch(ctx, "pg_dump")
	res, err := pgdump.DumpToFile(wctx, j.DB, tmp, func(n int64) { p.Set(map[string]int64{"bytes": n}) })
	err = Stalled(wctx, err)
	stop()
	if err != nil {
		return err
	}
	if err := fsutil.Commit(tmp, j.Tree.MarkerPath(beforeDump)); err != nil {
		return err
	}
	rec, _ := json.Marshal(manifest.Database{SHA256: res.SHA256, Size: res.Size, Tables: res.Tables})
	return j.mark(beforeRecord, string(rec))
}

// RollBackDatabase undoes step 5: after a rename swap the kept database is
// renamed back; after an in-place load the copy taken just before it is
// reloaded in place (without one the load never began). It says what it did.
func (j Job) RollBackDatabase(ctx context.Context, p Progress) (string, error) {
	if j.Mode() != pgdump.ModeInPlace {
		swapBack := j.DB.SwapBack
		if j.undone() != "" {
			swapBack = j.DB.SwapBackKeeping // the borrowed database is given back, not dropped
		}
		swapped, err := swapBack(ctx, j.Tree.ID)
		if err != nil {
			return "", err
		}
		faultpoint.Hit(faultpoint.RolledBackDatabase)
		if swapped {
			return "renamed the kept database back", nil
		}
		return "nothing to undo", nil
	}
	data, err := os.ReadFile(j.Tree.MarkerPath(beforeRecord))
	if errors.Is(err, fs.ErrNotExist) {
		return "nothing to undo: the in-place load had not begun", nil
	}
	if err != nil {
		return "", err
	}
	var rec manifest.Database
	if err := json.Unmarshal(data, &rec); err != nil {
		return "", fmt.Errorf("%s: %w", j.Tree.MarkerPath(beforeRecord), err)
	}
	dump := j.Tree.MarkerPath(beforeDump)
	if sum, _, err := archive.HashFile(dump); err != nil || sum != rec.SHA256 {
		return "", fmt.Errorf("the copy %s does not match its record (%v)", dump, err)
	}
	wctx, stop := p.Watch(ctx, "the in-place reload")
	err = Stalled(wctx, j.DB.RestoreInPlace(wctx, dump, rec.Tables, func(n int64) { p.Set(n) }))
	stop()
	if err != nil {
		return "", fmt.Errorf("in place: %w", err)
	}
	return "reloaded the state before the restore in place", nil
}

// RollBackStorage undoes step 4: the pre-restore copies go back in place.
// Where a path's copy is missing it is restored from the emergency backup
// (its archive and manifest), like a backup with its own staging area; the
// paths that were put back keep their newer copies. It says what it did.
func (j Job) RollBackStorage(ctx context.Context, p Progress, emergencyArchive string, emergency *manifest.Manifest) (string, error) {
	err := j.Tree.SwapBack()
	if err == nil {
		faultpoint.Hit(faultpoint.RolledBackStorage)
		return "swapped back", nil
	}
	var nc *staging.NoCopyError
	if !errors.As(err, &nc) || emergency == nil {
		return "", err
	}
	etree := staging.Tree{Root: j.Tree.Root, ID: j.Tree.ID + "-rollback"}
	if !etree.SwapStarted() {
		if err := etree.Reset(); err != nil {
			return "", err
		}
		if _, err := extract(ctx, p, emergencyArchive, emergency, etree.Dir(), nc.Paths); err != nil {
			return "", fmt.Errorf("from emergency backup %s: %w", emergency.ID, err)
		}
	}
	if err := etree.Swap(nc.Paths); err != nil {
		return "", err
	}
	if err := etree.Cleanup(); err != nil {
		return "", err
	}
	if err := j.Tree.Forget(); err != nil {
		return "", err
	}
	return fmt.Sprintf("put back; %v restored from emergency backup %s", nc.Paths, emergency.ID), nil
}

// Discard removes what the staging steps prepared, for a restore that stops
// before anything was swapped: the staging directory and the fresh database.
// The rename mode is recorded before a fresh database is created: without it
// there is none to drop, and a database that is down (the reason step 1
// failed, say) does not hold up the discard. An undo gives back what it
// borrowed instead.
func (j Job) Discard(ctx context.Context) error {
	if from := j.undone(); from != "" {
		if err := j.giveBackDatabase(ctx, from); err != nil {
			return fmt.Errorf("give back the borrowed database: %w", err)
		}
	} else if j.DB != nil && j.Mode() == pgdump.ModeRename {
		if err := j.DB.DropUnswapped(ctx, j.Tree.ID); err != nil {
			return fmt.Errorf("discard staged database: %w", err)
		}
	}
	return j.Tree.Discard()
}

// Loaded reports whether the restore loaded a database (and so it should be
// analyzed).
func (j Job) Loaded() bool { return j.DB != nil && j.Mode() != "" }

// ErrStalled marks a step stopped because its tool moved no bytes for too
// long: a retry starts it afresh.
var ErrStalled = errors.New("no progress")

// Stalled returns the cause of a watched context's end when it was a stall,
// else err.
func Stalled(watched context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(watched), ErrStalled) {
		return context.Cause(watched)
	}
	return err
}

// Taken reports whether anything named for this restore's id exists: its
// staging directory, a pre-restore copy of one of paths, or one of its
// databases. A restore given an id that is taken would find another
// restore's copies and take them for its own.
func (j Job) Taken(ctx context.Context, paths []string) (bool, error) {
	names := []string{j.Tree.Dir()}
	for _, p := range paths {
		names = append(names, j.Tree.PreRestore(p))
	}
	for _, n := range names {
		if _, err := os.Lstat(n); err == nil {
			return true, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	if j.DB == nil {
		return false, nil
	}
	taken, err := j.DB.NamesTaken(ctx, j.Tree.ID)
	if err != nil {
		return false, fmt.Errorf("database %s: %w", j.DB, err)
	}
	return taken, nil
}
