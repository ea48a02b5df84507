// Package lock keeps backups and restores from overlapping: one operation at a
// time holds a lock file in the backup directory that names its workflow. A
// lock whose workflow is no longer running is taken over.
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

// Holder names the operation that holds the lock.
type Holder struct {
	Operation  string    `json:"operation"`
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id"`
	Since      time.Time `json:"since"`
}

func (h Holder) same(o Holder) bool { return h.WorkflowID == o.WorkflowID && h.RunID == o.RunID }

// BusyError says which operation holds the lock.
type BusyError struct{ Holder Holder }

func (e *BusyError) Error() string {
	return fmt.Sprintf("another operation is running: %s workflow %s (run %s, since %s)",
		e.Holder.Operation, e.Holder.WorkflowID, e.Holder.RunID, e.Holder.Since.UTC().Format(time.RFC3339))
}

// IsRunning tells whether the holder's workflow still runs.
type IsRunning func(Holder) (bool, error)

// Acquire takes the lock in dir for me. It succeeds again for the same holder
// (a retried activity), takes over a lock whose holder no longer runs, and
// returns a *BusyError otherwise.
func Acquire(dir string, me Holder, running IsRunning) error {
	return guarded(dir, func(path string) error {
		cur, err := read(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		case cur.same(me):
			return nil
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
	g, err := os.OpenFile(filepath.Join(dir, FileName+".guard"), os.O_RDWR|os.O_CREATE, 0o600)
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
	data, err := os.ReadFile(path)
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(data, &h); err != nil {
		// A lock file we cannot read names nobody: treat it as stale.
		return Holder{Operation: "unknown", WorkflowID: "(unreadable lock file)"}, nil
	}
	return h, nil
}
