package pgdump

import (
	"context"
	"fmt"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// An undo of restore from borrows the database that restore kept
// (PreRestoreName(from)) as its own loaded database (RestoreName(undo)):
// SwapIn then puts it in place. A borrowed database is never dropped; an
// undo that does not complete renames it back.

// Borrow renames PreRestoreName(from) to RestoreName(undo) and returns its
// row counts. It is idempotent.
func (t *Target) Borrow(ctx context.Context, from, undo string) ([]manifest.TableCount, error) {
	kept, loaned := t.PreRestoreName(from), t.RestoreName(undo)
	if err := t.rename(ctx, kept, loaned, true); err != nil {
		return nil, fmt.Errorf("borrow the database kept by restore %s: %w", from, err)
	}
	conn, err := t.Connect(ctx, loaned)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	counts, err := RowCounts(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("count rows in %s: %w", t.redactedFor(loaned), err)
	}
	return counts, nil
}

// GiveBack renames a borrowed database that is not in place back to
// PreRestoreName(from); without one (never borrowed) it does nothing. It is
// idempotent.
func (t *Target) GiveBack(ctx context.Context, from, undo string) error {
	if err := t.rename(ctx, t.RestoreName(undo), t.PreRestoreName(from), false); err != nil {
		return fmt.Errorf("give the database back to restore %s: %w", from, err)
	}
	return nil
}

// rename renames database src to dst unless that has happened; it refuses
// when both exist, and when neither does if the source must exist.
func (t *Target) rename(ctx context.Context, src, dst string, mustExist bool) error {
	admin, err := t.Connect(ctx, t.maintenanceDB())
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	hasSrc, err := dbExists(ctx, admin, src)
	if err != nil {
		return err
	}
	hasDst, err := dbExists(ctx, admin, dst)
	if err != nil {
		return err
	}
	switch {
	case hasSrc && hasDst:
		return fmt.Errorf("both %s and %s exist; refusing to rename one over the other", src, dst)
	case hasSrc:
		return classifyPrivilege(renameDB(ctx, admin, src, dst))
	case !hasDst && mustExist:
		return fmt.Errorf("database %s does not exist", src)
	}
	return nil // renamed by an earlier attempt
}

// SwapBackKeeping undoes the SwapIn of a borrowed database: the database
// kept as PreRestoreName(undo) goes back in place and the borrowed one takes
// RestoreName(undo) again, for GiveBack; nothing is dropped. It is
// idempotent and reports whether it put a kept database back.
func (t *Target) SwapBackKeeping(ctx context.Context, undo string) (bool, error) {
	loaned, pre := t.RestoreName(undo), t.PreRestoreName(undo)
	admin, err := t.Connect(ctx, t.maintenanceDB())
	if err != nil {
		return false, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	exists := map[string]bool{}
	for _, db := range []string{loaned, pre, t.Name} {
		if exists[db], err = dbExists(ctx, admin, db); err != nil {
			return false, err
		}
	}
	switch {
	case !exists[pre]:
		return false, nil // never swapped in
	case exists[t.Name] && exists[loaned]:
		return false, fmt.Errorf("%s, %s and %s all exist; refusing to guess which to move", t.Name, loaned, pre)
	case exists[t.Name]:
		if err := renameDB(ctx, admin, t.Name, loaned); err != nil {
			return false, err
		}
	}
	return true, renameDB(ctx, admin, pre, t.Name)
}
