// Package lock keeps backups and restores from overlapping: one operation at a
// time holds a lock file in the backup directory that names its workflow. A
// lock whose workflow is no longer running is taken over, unless it records
// a rollback that did not complete: nothing may run over a mixed state until
// an operator has looked.
package lock

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
)

// FileName is the lock file inside the backup directory.
const FileName = ".vulcan.lock"

// Holder names the operation that holds the lock. It is the workflow, not
// one run of it: a Reset starts a new run that still holds the lock.
type Holder struct {
	Operation  string    `json:"operation"`
	WorkflowID string    `json:"workflow_id"`
	Since      time.Time `json:"since"`
	// State is what the holder recorded about itself; StateIncomplete
	// keeps the lock from being taken over.
	State string `json:"state,omitempty"`
}

// StateIncomplete marks the lock of a restore whose rollback did not
// complete.
const StateIncomplete = "rollback-incomplete"

func (h Holder) same(o Holder) bool { return h.WorkflowID == o.WorkflowID }

// BusyError says which operation holds the lock.
type BusyError struct{ Holder Holder }

func (e *BusyError) Error() string {
	if e.Holder.State == StateIncomplete {
		return fmt.Sprintf("the rollback of %s workflow %s did not complete (since %s): the data may be mixed; "+
			"fix the cause and run `starter retry %s`, or once it is put right by hand remove %s",
			e.Holder.Operation, e.Holder.WorkflowID, e.Holder.Since.UTC().Format(time.RFC3339), e.Holder.WorkflowID, FileName)
	}
	return fmt.Sprintf("another operation is running: %s workflow %s (since %s)",
		e.Holder.Operation, e.Holder.WorkflowID, e.Holder.Since.UTC().Format(time.RFC3339))
}

// IsRunning tells whether the holder's workflow still runs.
type IsRunning func(Holder) (bool, error)

// Acquire takes the lock in dir for me. It succeeds again for the same holder
// (a retried activity, or a new run of its workflow), recording me.State;
// takes over a lock whose holder no longer runs, unless that holder's
// rollback is incomplete; and returns a *BusyError otherwise.
func Acquire(dir string, me Holder, running IsRunning) error {
	return guarded(dir, func(path string) error {
		cur, err := read(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		case cur.same(me):
			if cur.State == me.State {
				return nil
			}
			me.Since = cur.Since
		case cur.State == StateIncomplete:
			return &BusyError{Holder: cur}
		default:
			alive, err := running(cur)
			if err != nil {
				return fmt.Errorf("check lock holder %s: %w", cur.WorkflowID, err)
			}
			if alive {
				return &BusyError{Holder: cur}
			}
		}
		data, err := json.Marshal(me)
		if err != nil {
			return err
		}
		return fsutil.WriteFileAtomic(path, data, 0o600)
	})
}

// Release drops the lock if me holds it.
func Release(dir string, me Holder) error {
	return guarded(dir, func(path string) error {
		cur, err := read(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !cur.same(me) {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("release lock: %w", err)
		}
		return nil
	})
}

// Current returns the holder of the lock, if any.
func Current(dir string) (*Holder, error) {
	h, err := read(filepath.Join(dir, FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &h, nil
}

// guarded runs fn while holding an flock on a guard file, so that checking
// and taking over the lock is one step for every process on the host.
func guarded(dir string, fn func(path string) error) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("lock directory: %w", err)
	}
	g, err := os.OpenFile(filepath.Join(dir, FileName+".guard"), os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return fmt.Errorf("lock guard: %w", err)
	}
	defer g.Close()
	if err := syscall.Flock(int(g.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock guard: %w", err)
	}
	defer syscall.Flock(int(g.Fd()), syscall.LOCK_UN)
	return fn(filepath.Join(dir, FileName))
}

func read(path string) (Holder, error) {
	var h Holder
	data, err := os.ReadFile(path) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(data, &h); err != nil {
		// A lock file we cannot read names nobody: treat it as stale.
		return Holder{Operation: "unknown", WorkflowID: "(unreadable lock file)"}, nil
	}
	return h, nil
}
