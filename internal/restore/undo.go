package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/pgdump"
	"github.com/project-vulcan/vulcan-backup/internal/staging"
)

// An undo is a restore whose staged copies are the pre-restore copies a
// verified restore kept for its undo window: they are borrowed (renamed into
// the undo's staging directory, the kept database renamed to the undo's
// loaded name, or the dump taken before an in-place load moved over), swapped
// in by steps 4 and 5 like an extracted backup, and given back if the undo
// does not complete. The undo keeps what it replaced for its own window, so
// it can be undone in turn.

// Files of the staging directories that belong to undos.
const (
	undoOf       = "undo-of"            // in the undo's: the restore it undoes
	undoManifest = "undo-manifest.json" // in the undo's: what it swaps in
	claimFile    = "claim"              // in the undone restore's: who may use its copies
	claimFinish  = "finish"             // the restore's own clean-up
	claimUndo    = "undo "              // an undo, followed by its id
)

// ErrNothingToUndo means the restore has no copies to give: it was rolled
// back, its undo window ended, or it was undone already.
var ErrNothingToUndo = staging.ErrNothingToUndo

// ErrRefused marks an undo that cannot go ahead as configured; nothing was
// changed.
var ErrRefused = errors.New("undo refused")

// BorrowedError is Finish's refusal for a restore whose copies an undo has
// borrowed: the caller takes the operation lock (no undo runs then) and
// calls FinishBorrowed.
type BorrowedError struct{ By string }

func (e *BorrowedError) Error() string {
	return fmt.Sprintf("the pre-restore copies were borrowed by the undo %s", e.By)
}

// ManifestPath is where an undo's description of what it swaps in is kept.
func (j Job) ManifestPath() string { return j.Tree.MarkerPath(undoManifest) }

// Undo prepares j as the undo of restore from: it claims from's copies,
// borrows them, and writes the undo's manifest (layout and row counts of
// what it will swap in). Every refusal comes before anything moves; a retry
// carries on.
func (j Job) Undo(ctx context.Context, from string) (*manifest.Manifest, error) {
	r := Job{Tree: staging.Tree{Root: j.Tree.Root, ID: from}, DB: j.DB}
	if r.Mode() != "" && j.DB == nil {
		return nil, fmt.Errorf("%w: restore %s restored the database: DATABASE_URL must be set to undo it", ErrRefused, from)
	}
	if err := r.takeClaim(claimUndo + j.Tree.ID); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(j.Tree.Dir(), 0o700); err != nil {
		return nil, err
	}
	if err := j.mark(undoOf, from); err != nil {
		return nil, err
	}
	paths, err := j.Tree.Borrow(r.Tree)
	if err != nil {
		return nil, err
	}
	db, err := j.borrowDatabase(ctx, r)
	if err != nil {
		return nil, err
	}
	files, total, err := archive.Layout(ctx, j.Tree.Dir(), paths)
	if err != nil {
		return nil, err
	}
	m := &manifest.Manifest{
		FormatVersion: manifest.FormatVersion, ID: j.Tree.ID, Kind: manifest.KindUndo,
		CreatedAt: time.Now().UTC().Truncate(time.Second), Paths: paths, Files: files, Database: db, TotalBytes: total,
	}
	if db != nil {
		m.TotalBytes += db.Size
	}
	if err := manifest.Write(j.ManifestPath(), m); err != nil {
		return nil, err
	}
	return m, j.mark(storageStaged, m.ID)
}

// takeClaim claims r's copies for by. The first claim wins and is made by
// a hard link, which fails if the name exists; a claim of an earlier undo
// is taken over, as the caller holds the operation lock and no other undo
// runs.
func (j Job) takeClaim(by string) error {
	holder, err := j.claim(by)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: restore %s kept none (rolled back, undo window ended, or not found)", ErrNothingToUndo, j.Tree.ID)
	case err != nil:
		return err
	case holder == by:
		return nil
	case holder == claimFinish:
		return fmt.Errorf("%w: the undo window of restore %s has ended and its copies are being removed", ErrNothingToUndo, j.Tree.ID)
	}
	return fsutil.WriteFileAtomic(j.Tree.MarkerPath(claimFile), []byte(by), 0o600)
}

// claim records by as the claim on j's copies unless there is one, and
// returns the claim in force.
func (j Job) claim(by string) (string, error) {
	name := j.Tree.MarkerPath(claimFile)
	tmp := fsutil.TempName(name)
	if err := fsutil.WriteFileAtomic(tmp, []byte(by), 0o600); err != nil {
		return "", err
	}
	defer os.Remove(tmp) // #nosec G104 -- a leftover temporary file goes with the staging directory
	if err := os.Link(tmp, name); err == nil {
		return by, fsutil.SyncDir(j.Tree.Dir())
	} else if !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	data, err := os.ReadFile(name) // #nosec G304 -- a restore's own staging area
	return string(data), err
}

// borrowDatabase takes the copy of the database that restore r kept: the
// database renamed aside, or the dump taken before an in-place load. It
// returns its description for the undo's manifest, or nil when r did not
// restore the database.
func (j Job) borrowDatabase(ctx context.Context, r Job) (*manifest.Database, error) {
	switch r.Mode() {
	case "":
		return nil, nil
	case pgdump.ModeInPlace:
		data, err := os.ReadFile(r.Tree.MarkerPath(beforeRecord))
		if err != nil {
			return nil, fmt.Errorf("the record of the copy restore %s kept: %w", r.Tree.ID, err)
		}
		var db manifest.Database
		if err := json.Unmarshal(data, &db); err != nil {
			return nil, fmt.Errorf("%s: %w", r.Tree.MarkerPath(beforeRecord), err)
		}
		if err := j.mark(dbMode, pgdump.ModeInPlace); err != nil {
			return nil, err
		}
		if err := moveFile(r.Tree.MarkerPath(beforeDump), j.Tree.Staged(manifest.UndoDumpName)); err != nil {
			return nil, err
		}
		db.ArchivePath = manifest.UndoDumpName
		return &db, nil
	}
	if err := j.mark(dbMode, pgdump.ModeRename); err != nil {
		return nil, err
	}
	counts, err := j.DB.Borrow(ctx, r.Tree.ID, j.Tree.ID)
	if err != nil {
		return nil, err
	}
	return &manifest.Database{Name: j.DB.Name, Tables: counts}, j.mark(dbStaged, j.Tree.ID)
}

// undone is the id of the restore j undoes, or "".
func (j Job) undone() string {
	data, err := os.ReadFile(j.Tree.MarkerPath(undoOf))
	if err != nil {
		return ""
	}
	return string(data)
}

// giveBackDatabase returns the borrowed copy of the database to the restore
// it came from, once the undo's own swap is undone.
func (j Job) giveBackDatabase(ctx context.Context, from string) error {
	r := Job{Tree: staging.Tree{Root: j.Tree.Root, ID: from}, DB: j.DB}
	switch j.Mode() {
	case pgdump.ModeRename:
		return j.DB.GiveBack(ctx, from, j.Tree.ID)
	case pgdump.ModeInPlace:
		return moveFile(j.Tree.Staged(manifest.UndoDumpName), r.Tree.MarkerPath(beforeDump))
	}
	return nil
}

// moveFile renames src to dst unless that has happened; it refuses when
// both exist.
func moveFile(src, dst string) error {
	hasSrc, err := fsutil.Exists(src)
	if err != nil || !hasSrc {
		return err
	}
	if hasDst, err := fsutil.Exists(dst); err != nil || hasDst {
		return errors.Join(err, fmt.Errorf("both %s and %s exist; refusing to move one over the other", src, dst))
	}
	return fsutil.Commit(src, dst)
}

// Finish removes what a verified restore kept until the end of its undo
// window: the pre-restore copies, the staging directory and the kept
// database. A restore whose copies an undo borrowed returns *BorrowedError.
func (j Job) Finish(ctx context.Context) error {
	holder, err := j.claim(claimFinish)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if by, ok := strings.CutPrefix(holder, claimUndo); ok {
		return &BorrowedError{By: by}
	}
	return j.FinishBorrowed(ctx)
}

// FinishBorrowed is Finish for a restore an undo borrowed from, called with
// the operation lock held: whatever the undo left under this restore's names
// (nothing, or the copies it gave back) goes.
func (j Job) FinishBorrowed(ctx context.Context) error {
	if j.DB != nil {
		if err := j.DB.DropPreRestore(ctx, j.Tree.ID); err != nil {
			return fmt.Errorf("drop pre-restore database: %w", err)
		}
	}
	return j.Tree.Cleanup()
}
