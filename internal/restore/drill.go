package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/pgdump"
)

// Drill is a restore into scratch space, to prove a backup restores: its
// paths extracted into <root>/.vulcan-drill-<id>/ and its dump loaded into
// <db>_drill_<id>, through the same checked extraction and load a restore
// uses. Nothing in place is touched and no service is stopped.
type Drill struct {
	Root string
	ID   string
	DB   *pgdump.Target // nil without DATABASE_URL
}

// drillPrefix begins the name of every drill's scratch directory.
const drillPrefix = ".vulcan-drill-"

// drillOwner, in a drill's scratch root, names the drill that claimed it.
const drillOwner = ".vulcan-drill-owner"

// Claim makes the drill's scratch root the drill owner's: it creates it,
// recording owner, and reports true; or finds it made by the same owner (a
// retried step) and reports true; or finds another drill's and reports
// false. Creating the directory is what decides between two drills that
// want the same id.
func (d Drill) Claim(owner string) (bool, error) {
	err := os.Mkdir(d.Dir(), 0o700)
	switch {
	case err == nil:
		return true, fsutil.WriteFileAtomic(filepath.Join(d.Dir(), drillOwner), []byte(owner), 0o600)
	case !errors.Is(err, fs.ErrExist):
		return false, err
	}
	data, err := os.ReadFile(filepath.Join(d.Dir(), drillOwner))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // a drill that died between the two, or another's
	}
	return err == nil && string(data) == owner, err
}

// Dir is the drill's scratch root.
func (d Drill) Dir() string { return filepath.Join(d.Root, drillPrefix+d.ID) }

// Extract extracts the backup's paths into the scratch root the drill
// claimed, every entry checked against the manifest as it is written (a
// damaged archive fails here). What an earlier attempt wrote is removed
// first; the claim stays.
func (d Drill) Extract(ctx context.Context, p Progress, archivePath string, m *manifest.Manifest) (*archive.Report, error) {
	entries, err := os.ReadDir(d.Dir())
	if err != nil {
		return nil, fmt.Errorf("drill scratch root: %w", err)
	}
	for _, e := range entries {
		if e.Name() != drillOwner {
			if err := os.RemoveAll(filepath.Join(d.Dir(), e.Name())); err != nil {
				return nil, err
			}
		}
	}
	return extract(ctx, p, archivePath, m, d.Dir(), nil)
}

// Load loads the backup's dump into the scratch database and checks its row
// counts; without a dump or a database it does nothing and says so.
func (d Drill) Load(ctx context.Context, p Progress, archivePath string, m *manifest.Manifest) (loaded bool, err error) {
	if m.Database == nil || d.DB == nil {
		return false, nil
	}
	dump, err := dumpFor(ctx, p, archivePath, m, "", filepath.Join(d.Dir(), ".dump"))
	if err != nil {
		return false, err
	}
	wctx, stop := p.Watch(ctx, "the load of the dump")
	err = Stalled(wctx, d.DB.LoadDrill(wctx, dump, d.ID, m.Database.Tables, loadProgress(p, m)))
	stop()
	return err == nil, err
}

// Verify reads every file of the scratch root against the manifest (type,
// size, mode, SHA-256) and, when a dump was loaded, counts the scratch
// database's rows: the differences are returned as problems.
func (d Drill) Verify(ctx context.Context, p Progress, m *manifest.Manifest, loaded bool) (*archive.Report, []string, error) {
	// One file at a time: a drill runs beside the application and takes
	// no more of the machine than it needs.
	rep, err := archive.CheckTreeReaders(ctx, d.Dir(), m, 1, func(pr archive.Progress) { p.Set(pr) })
	var problems []string
	var mis *archive.TreeMismatch
	switch {
	case errors.As(err, &mis):
		problems = append(problems, mis.Error())
	case err != nil:
		return nil, nil, err
	}
	if loaded {
		if err := d.DB.CheckDrillCounts(ctx, d.ID, m.Database.Tables); errors.Is(err, pgdump.ErrRowCounts) {
			problems = append(problems, err.Error())
		} else if err != nil {
			return nil, nil, err
		}
	}
	return rep, problems, nil
}

// Clean removes the drill's scratch root and database.
func (d Drill) Clean(ctx context.Context) error {
	if err := os.RemoveAll(d.Dir()); err != nil {
		return fmt.Errorf("remove drill scratch root: %w", err)
	}
	if d.DB != nil {
		if err := d.DB.DropDrill(ctx, d.ID); err != nil {
			return err
		}
	}
	return nil
}

// CleanDrills removes every drill's scratch root and database but keep's
// ("" for all): a finished drill's, and whatever a dead one left. It
// returns what it removed.
func CleanDrills(ctx context.Context, root string, db *pgdump.Target, keep string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), drillPrefix)
		if !ok || !manifest.ValidID(id) || id == keep {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			return removed, fmt.Errorf("remove drill scratch root: %w", err)
		}
		removed = append(removed, e.Name())
	}
	if db != nil {
		names, err := db.DropDrills(ctx, keep)
		removed = append(removed, names...)
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}
