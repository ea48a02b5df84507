package pgdump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/project-vulcan/vulcan-backup/internal/faultpoint"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// Restore modes, as reported to the operator.
const (
	ModeRename  = "rename"
	ModeInPlace = "in-place"
)

// ErrScript marks a dump that psql could not apply (exit status 3 with
// ON_ERROR_STOP): the same dump fails the same way again, so it is not retried.
var ErrScript = errors.New("the dump could not be applied")

// ErrRowCounts marks a restored database whose row counts differ from the backup.
var ErrRowCounts = errors.New("restored row counts do not match the backup")

// ErrRenameNotAllowed means the fresh-database swap cannot be used here (no
// CREATEDB privilege, not the owner, or names too long); the caller may fall
// back to an in-place restore.
var ErrRenameNotAllowed = errors.New("database swap by rename is not possible")

const maxIdent = 63

// RestoreName is the fresh database a restore loads into.
func (t *Target) RestoreName(restoreID string) string { return t.Name + "_restore_" + restoreID }

// PreRestoreName is the name the current database is kept under after the swap.
func (t *Target) PreRestoreName(restoreID string) string {
	return t.Name + "_pre_restore_" + restoreID
}

// maintenanceDB is a database to connect to while the target is renamed.
func (t *Target) maintenanceDB() string {
	if t.Name == "postgres" {
		return "template1"
	}
	return "postgres"
}

// LoadFile feeds a plain-SQL dump to psql in a single transaction, stopping at
// the first error, against database db. progress gets the bytes read so far.
func (t *Target) LoadFile(ctx context.Context, db, dumpPath string, progress func(int64)) error {
	f, err := os.Open(dumpPath) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return fmt.Errorf("open dump: %w", err)
	}
	defer f.Close()
	return t.psql(ctx, db, &countingReader{r: f, progressCounter: newProgressCounter(progress)})
}

// psql runs the SQL script read from stdin against database db in a single
// transaction, stopping at the first error.
func (t *Target) psql(ctx context.Context, db string, stdin io.Reader) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", // #nosec G204 -- a fixed tool (pg_dump, psql, docker, systemctl) or the operator's own configured command; arguments are not a shell string
		"--dbname="+t.url(db))
	cmd.Env = t.env()
	cmd.Stdin = stdin
	cmd.Stdout = io.Discard
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 8 << 10}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 3 {
			err = fmt.Errorf("%w (%v)", ErrScript, err)
		}
		return fmt.Errorf("psql load into %s: %w: %s", t.redactedFor(db), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// RestoreFresh loads the dump into a fresh database, checks its row counts
// against want, and swaps it in: the current database becomes
// PreRestoreName(restoreID). It is idempotent: a repeated call after a
// completed swap does nothing. It returns ErrRenameNotAllowed, having changed
// nothing, where the swap cannot be done.
func (t *Target) RestoreFresh(ctx context.Context, dumpPath, restoreID string, want []manifest.TableCount, progress func(int64)) error {
	if err := t.LoadFresh(ctx, dumpPath, restoreID, want, progress); err != nil {
		return err
	}
	if err := t.SwapIn(ctx, restoreID); err != nil {
		// The caller may fall back to an in-place load: leave nothing behind.
		if derr := t.DropUnswapped(context.WithoutCancel(ctx), restoreID); derr != nil {
			return errors.Join(err, derr)
		}
		return err
	}
	return nil
}

// LoadFresh creates RestoreName(restoreID) (dropping a leftover of an earlier
// attempt), loads the dump into it and checks its row counts against want.
// Its statistics come later, from Analyze once it is in place.
// The current database is not touched, so this can run while the
// application still uses it. After a completed swap it does nothing. It
// returns ErrRenameNotAllowed, having changed nothing, where the role may not
// create databases or the names would be too long.
func (t *Target) LoadFresh(ctx context.Context, dumpPath, restoreID string, want []manifest.TableCount, progress func(int64)) error {
	fresh, pre := t.RestoreName(restoreID), t.PreRestoreName(restoreID)
	if len(pre) > maxIdent {
		return fmt.Errorf("%w: %q would exceed PostgreSQL's %d-byte name limit", ErrRenameNotAllowed, pre, maxIdent)
	}
	admin, swapped, err := t.adminFor(ctx, restoreID)
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if swapped {
		return nil // by an earlier attempt
	}
	if err := t.createLike(ctx, admin, fresh); err != nil {
		return err
	}
	dropFresh := func() {
		_ = dropDB(context.WithoutCancel(ctx), admin, fresh)
	}
	if err := copyProperties(ctx, admin, t.Name, fresh); err != nil {
		dropFresh()
		return classifyPrivilege(fmt.Errorf("give %s the owner, privileges and settings of %s: %w", fresh, t.Name, err))
	}
	if err := t.loadFresh(ctx, fresh, dumpPath, progress); err != nil {
		dropFresh()
		return err
	}
	if err := t.checkCounts(ctx, fresh, want); err != nil {
		dropFresh()
		return err
	}
	return nil
}

// createLike creates the empty database name (dropping a leftover of that
// name first) with the target's encoding and collation.
func (t *Target) createLike(ctx context.Context, admin *pgx.Conn, name string) error {
	var encoding, collate, ctype string
	err := admin.QueryRow(ctx, `SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = $1`, t.Name).
		Scan(&encoding, &collate, &ctype)
	if errors.Is(err, pgx.ErrNoRows) {
		encoding, collate, ctype = "UTF8", "", ""
	} else if err != nil {
		return fmt.Errorf("read settings of database %s: %w", t.Name, err)
	}
	if err := dropDB(ctx, admin, name); err != nil {
		return classifyPrivilege(fmt.Errorf("drop leftover database %s: %w", name, err))
	}
	create := "CREATE DATABASE " + ident(name) + " TEMPLATE template0 ENCODING " + quote(encoding)
	if collate != "" {
		create += " LC_COLLATE " + quote(collate) + " LC_CTYPE " + quote(ctype)
	}
	if _, err := admin.Exec(ctx, create); err != nil {
		return classifyPrivilege(fmt.Errorf("create database %s: %w", name, err))
	}
	return nil
}

// loadFresh loads the dump into db, a database just created for it: on
// several sessions where the dump allows it (see loadParallel), else by one
// psql.
func (t *Target) loadFresh(ctx context.Context, db, dumpPath string, progress func(int64)) error {
	plan, err := planLoad(dumpPath)
	switch {
	case err == nil:
		return t.loadParallel(ctx, db, dumpPath, plan, progress)
	case errors.Is(err, errUnplanned):
		return t.LoadFile(ctx, db, dumpPath, progress)
	default:
		return err
	}
}

// Analyze runs VACUUM (ANALYZE) on the target database: planner statistics
// and a visibility map for a database that was just loaded, instead of
// waiting for autovacuum. A restore runs it once it has passed, off its own
// path: on the loaded copy before the swap it took 0.6 s of CPU beside the
// emergency backup.
func (t *Target) Analyze(ctx context.Context) error {
	conn, err := t.Connect(ctx, t.Name)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE)"); err != nil {
		return fmt.Errorf("vacuum %s: %w", t, err)
	}
	return nil
}

// SwapIn renames the current database to PreRestoreName(restoreID) and the
// one LoadFresh filled to the current name. It is idempotent: which of the
// three names exist tells how far an earlier attempt got (target and fresh:
// not begun; kept and fresh: half done, finished here; kept and target:
// done). Where renaming is not allowed it returns ErrRenameNotAllowed.
func (t *Target) SwapIn(ctx context.Context, restoreID string) error {
	fresh, pre := t.RestoreName(restoreID), t.PreRestoreName(restoreID)
	admin, err := t.Connect(ctx, t.maintenanceDB())
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	hasFresh, err := dbExists(ctx, admin, fresh)
	if err != nil {
		return err
	}
	hasPre, err := dbExists(ctx, admin, pre)
	if err != nil {
		return err
	}
	switch {
	case hasPre && !hasFresh:
		return nil // done by an earlier attempt
	case !hasFresh:
		return fmt.Errorf("swap in %s: it does not exist (not loaded)", fresh)
	case hasPre:
		// The current database was renamed aside and the attempt stopped.
		if err := renameDB(ctx, admin, fresh, t.Name); err != nil {
			return classifyPrivilege(err)
		}
		return nil
	}
	// On failure the loaded database stays for a retry; the restore's undo
	// (SwapBack, DropUnswapped) removes it if the restore gives up.
	return t.swap(ctx, admin, fresh, pre)
}

// adminFor connects to the maintenance database and reports whether restore
// restoreID has swapped already (its PreRestoreName exists). The caller
// closes the connection.
func (t *Target) adminFor(ctx context.Context, restoreID string) (*pgx.Conn, bool, error) {
	admin, err := t.Connect(ctx, t.maintenanceDB())
	if err != nil {
		return nil, false, err
	}
	swapped, err := dbExists(ctx, admin, t.PreRestoreName(restoreID))
	if err != nil {
		admin.Close(context.WithoutCancel(ctx)) // #nosec G104 -- closed on an error path or after use; the error that matters is returned
		return nil, false, err
	}
	return admin, swapped, nil
}

// DropUnswapped drops RestoreName(restoreID) if no swap has happened (no
// PreRestoreName(restoreID) exists): the clean-up of a restore that stopped
// before its database step.
func (t *Target) DropUnswapped(ctx context.Context, restoreID string) error {
	fresh := t.RestoreName(restoreID)
	admin, swapped, err := t.adminFor(ctx, restoreID)
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if swapped {
		return nil
	}
	if err := dropDB(ctx, admin, fresh); err != nil {
		return fmt.Errorf("drop %s: %w", fresh, err)
	}
	return nil
}

// swap renames target → pre and fresh → target, terminating sessions on the
// target first. A failed second rename undoes the first.
func (t *Target) swap(ctx context.Context, admin *pgx.Conn, fresh, pre string) error {
	exists, err := dbExists(ctx, admin, t.Name)
	if err != nil {
		return err
	}
	if exists {
		if err := renameDB(ctx, admin, t.Name, pre); err != nil {
			return classifyPrivilege(err)
		}
		faultpoint.Hit(faultpoint.DatabaseHalfSwap)
	}
	if err := renameDB(ctx, admin, fresh, t.Name); err != nil {
		if exists {
			if uerr := renameDB(context.WithoutCancel(ctx), admin, pre, t.Name); uerr != nil {
				return fmt.Errorf("swap in %s: %w (and putting %s back failed: %v)", fresh, err, t.Name, uerr)
			}
		}
		return classifyPrivilege(err)
	}
	return nil
}

// SwapBack undoes RestoreFresh: the database kept as PreRestoreName becomes
// the target again and the restored one is dropped. Without a kept database
// it only drops the fresh one (nothing was swapped). It is idempotent and
// reports whether a kept database was put back.
func (t *Target) SwapBack(ctx context.Context, restoreID string) (bool, error) {
	fresh, pre := t.RestoreName(restoreID), t.PreRestoreName(restoreID)
	admin, err := t.Connect(ctx, t.maintenanceDB())
	if err != nil {
		return false, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	hasPre, err := dbExists(ctx, admin, pre)
	if err != nil {
		return false, err
	}
	if !hasPre {
		if err := dropDB(ctx, admin, fresh); err != nil {
			return false, fmt.Errorf("drop %s: %w", fresh, err)
		}
		return false, nil
	}
	hasTarget, err := dbExists(ctx, admin, t.Name)
	if err != nil {
		return false, err
	}
	if hasTarget {
		// The restored database takes the fresh name again, then goes.
		if err := dropDB(ctx, admin, fresh); err != nil {
			return false, fmt.Errorf("drop %s: %w", fresh, err)
		}
		if err := renameDB(ctx, admin, t.Name, fresh); err != nil {
			return false, err
		}
	}
	if err := renameDB(ctx, admin, pre, t.Name); err != nil {
		return false, err
	}
	if err := dropDB(ctx, admin, fresh); err != nil {
		return true, fmt.Errorf("drop %s: %w", fresh, err)
	}
	return true, nil
}

// DropPreRestore removes the database kept by a successful restore.
func (t *Target) DropPreRestore(ctx context.Context, restoreID string) error {
	admin, err := t.Connect(ctx, t.maintenanceDB())
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	for _, db := range []string{t.PreRestoreName(restoreID), t.RestoreName(restoreID)} {
		if err := dropDB(ctx, admin, db); err != nil {
			return fmt.Errorf("drop %s: %w", db, err)
		}
	}
	return nil
}

// RestoreInPlace loads the dump into the target database in one transaction;
// the dump's DROP ... IF EXISTS statements replace what is there. A failure
// leaves the database as it was.
func (t *Target) RestoreInPlace(ctx context.Context, dumpPath string, want []manifest.TableCount, progress func(int64)) error {
	if err := t.LoadFile(ctx, t.Name, dumpPath, progress); err != nil {
		return err
	}
	return t.checkCounts(ctx, t.Name, want)
}

// CheckCounts compares the target's row counts with want.
func (t *Target) CheckCounts(ctx context.Context, want []manifest.TableCount) error {
	return t.checkCounts(ctx, t.Name, want)
}

func (t *Target) checkCounts(ctx context.Context, db string, want []manifest.TableCount) error {
	conn, err := t.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	got, err := RowCounts(ctx, conn)
	if err != nil {
		return fmt.Errorf("count rows in %s: %w", t.redactedFor(db), err)
	}
	if diff := CompareCounts(want, got); diff != "" {
		return fmt.Errorf("%w in %s: %s", ErrRowCounts, t.redactedFor(db), diff)
	}
	return nil
}

// dropDB drops database name if it exists, closing its sessions.
func dropDB(ctx context.Context, admin *pgx.Conn, name string) error {
	_, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)")
	return err
}

func dbExists(ctx context.Context, admin *pgx.Conn, name string) (bool, error) {
	var ok bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, err)
	}
	return ok, nil
}

// renameDB renames a database, closing other sessions on it first; a session
// that reconnects in between is closed again, a few times.
func renameDB(ctx context.Context, admin *pgx.Conn, from, to string) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		// Client sessions only: an autovacuum worker (busy on a database
		// that was just loaded) runs as superuser, so a non-superuser may
		// not terminate it, and PostgreSQL stops it for the rename anyway.
		if _, err = admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`, from); err != nil {
			return fmt.Errorf("close sessions on %s: %w", from, err)
		}
		_, err = admin.Exec(ctx, "ALTER DATABASE "+ident(from)+" RENAME TO "+ident(to))
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" { // object_in_use
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("rename database %s to %s: %w", from, to, err)
	}
	return nil
}

// classifyPrivilege turns "permission denied" into ErrRenameNotAllowed.
func classifyPrivilege(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42501" || pgErr.Code == "0A000") {
		return fmt.Errorf("%w: %v", ErrRenameNotAllowed, err)
	}
	return err
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

type countingReader struct {
	r io.Reader
	*progressCounter
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.add(n)
	return n, err
}

// NamesTaken reports whether a database named for restore restoreID exists
// (RestoreName or PreRestoreName): another restore used the id.
func (t *Target) NamesTaken(ctx context.Context, restoreID string) (bool, error) {
	admin, err := t.Connect(ctx, t.maintenanceDB())
	if err != nil {
		return false, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	for _, name := range []string{t.RestoreName(restoreID), t.PreRestoreName(restoreID)} {
		if ok, err := dbExists(ctx, admin, name); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}
