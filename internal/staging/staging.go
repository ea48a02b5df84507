// Package staging swaps restored directory trees into place. A restore
// extracts into a staging directory beside the target (same file system),
// then swaps: each target path is renamed to <path>.pre-restore-<id> and the
// staged copy renamed to the target. Renames are instant and can be undone,
// so the application is never left with half a tree.
//
// Every operation is idempotent: it inspects the file system and a small
// swap record, so a retried or resumed step carries on where it stopped.
package staging

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
)

// Tree is the staging area of one restore.
type Tree struct {
	// Root is the project root; paths are relative to it.
	Root string
	// ID identifies the restore.
	ID string
}

// Dir is the staging directory.
func (t Tree) Dir() string { return filepath.Join(t.Root, ".vulcan-restore-"+t.ID) }

// Staged is where path p is extracted.
func (t Tree) Staged(p string) string { return filepath.Join(t.Dir(), filepath.FromSlash(p)) }

// Target is path p in place.
func (t Tree) Target(p string) string { return filepath.Join(t.Root, filepath.FromSlash(p)) }

// PreRestore is where the current copy of p is kept until the restore passes.
func (t Tree) PreRestore(p string) string { return t.Target(p) + ".pre-restore-" + t.ID }

func (t Tree) recordPath() string { return filepath.Join(t.Dir(), "swap.json") }

// MarkerPath is a file in the staging directory where other steps may keep
// small state (such as the database restore mode).
func (t Tree) MarkerPath(name string) string { return filepath.Join(t.Dir(), name) }

type record struct {
	Paths []pathRecord `json:"paths"`
}

type pathRecord struct {
	Path    string `json:"path"`
	Existed bool   `json:"existed"`
}

// SwapStarted reports whether Swap has begun (extraction is then complete).
func (t Tree) SwapStarted() bool {
	ok, _ := fsutil.Exists(t.recordPath())
	return ok
}

// Reset removes any earlier staging directory of this restore and creates an
// empty one (mode 0700). It refuses once a swap has begun.
func (t Tree) Reset() error {
	if err := t.resettable(); err != nil {
		return err
	}
	if err := os.RemoveAll(t.Dir()); err != nil {
		return fmt.Errorf("staging: clear %s: %w", t.Dir(), err)
	}
	if err := os.Mkdir(t.Dir(), 0o700); err != nil {
		return fmt.Errorf("staging: create %s: %w", t.Dir(), err)
	}
	return nil
}

// ResetPaths removes any earlier staged copy of paths, keeping the rest of the
// staging directory (the database step's markers), and creates the directory
// (mode 0700) if it is missing. It refuses once a swap has begun.
func (t Tree) ResetPaths(paths []string) error {
	if err := t.resettable(); err != nil {
		return err
	}
	if err := os.Mkdir(t.Dir(), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("staging: create %s: %w", t.Dir(), err)
	}
	for _, p := range paths {
		if err := os.RemoveAll(t.Staged(p)); err != nil {
			return fmt.Errorf("staging: clear %s: %w", t.Staged(p), err)
		}
	}
	return nil
}

// resettable refuses to clear staged copies once a swap has begun, or when
// they are borrowed.
func (t Tree) resettable() error {
	if t.SwapStarted() {
		return errors.New("staging: swap already begun; refusing to reset")
	}
	if t.borrowed() {
		return errors.New("staging: the staged copies are borrowed pre-restore copies; refusing to reset")
	}
	return nil
}

// Discard removes the staging directory if no swap has begun, first giving
// borrowed copies back; after a swap the swap's own undo (SwapBack) goes
// first.
func (t Tree) Discard() error {
	if t.SwapStarted() {
		return nil
	}
	if l, err := t.readLoan(); err == nil {
		if err := t.giveBack(l); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.RemoveAll(t.Dir()); err != nil {
		return fmt.Errorf("staging: remove %s: %w", t.Dir(), err)
	}
	return nil
}

// Swap puts the staged copy of every path in place, keeping the current copy
// as PreRestore(p). A path that did not exist before is simply put in place.
func (t Tree) Swap(paths []string) error {
	rec, err := t.readRecord()
	if errors.Is(err, fs.ErrNotExist) {
		rec = &record{}
		for _, p := range paths {
			existed, err := fsutil.Exists(t.Target(p))
			if err != nil {
				return fmt.Errorf("staging: %w", err)
			}
			rec.Paths = append(rec.Paths, pathRecord{Path: p, Existed: existed})
		}
		data, _ := json.Marshal(rec)
		if err := fsutil.WriteFileAtomic(t.recordPath(), data, 0o600); err != nil {
			return fmt.Errorf("staging: write swap record: %w", err)
		}
	} else if err != nil {
		return err
	}
	absent := t.absent()
	for _, r := range rec.Paths {
		staged, target, pre := t.Staged(r.Path), t.Target(r.Path), t.PreRestore(r.Path)
		if slices.Contains(absent, r.Path) {
			if err := t.keepAside(r); err != nil {
				return err
			}
			continue
		}
		hasStaged, err := fsutil.Exists(staged)
		if err != nil {
			return fmt.Errorf("staging: %w", err)
		}
		if !hasStaged {
			continue // swapped by an earlier attempt
		}
		if r.Existed {
			if hasPre, _ := fsutil.Exists(pre); !hasPre {
				if err := os.Rename(target, pre); err != nil {
					return fmt.Errorf("staging: keep %s as %s: %w", target, pre, err)
				}
			}
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil { // #nosec G301 -- parents of a restored path, which the application must traverse
			return fmt.Errorf("staging: %w", err)
		}
		if err := os.Rename(staged, target); err != nil {
			return fmt.Errorf("staging: move %s into place: %w", staged, err)
		}
		if err := fsutil.SyncDir(filepath.Dir(target)); err != nil {
			return fmt.Errorf("staging: %w", err)
		}
	}
	return nil
}

// keepAside swaps a path the undo removes: the current copy is kept as
// PreRestore(p) and nothing takes its place.
func (t Tree) keepAside(r pathRecord) error {
	if !r.Existed {
		return nil
	}
	if hasPre, _ := fsutil.Exists(t.PreRestore(r.Path)); hasPre {
		return nil // an earlier attempt did
	}
	if err := os.Rename(t.Target(r.Path), t.PreRestore(r.Path)); err != nil {
		return fmt.Errorf("staging: keep %s as %s: %w", t.Target(r.Path), t.PreRestore(r.Path), err)
	}
	return fsutil.SyncDir(filepath.Dir(t.Target(r.Path)))
}

// ErrNoCopy means a swap cannot be undone because the pre-restore copy of a
// path is gone; the caller restores that path from another backup.
var ErrNoCopy = errors.New("pre-restore copy is missing")

// NoCopyError names the paths whose pre-restore copy is missing; it is an
// ErrNoCopy.
type NoCopyError struct{ Paths []string }

func (e *NoCopyError) Error() string { return fmt.Sprintf("%v for %v", ErrNoCopy, e.Paths) }
func (e *NoCopyError) Unwrap() error { return ErrNoCopy }

// SwapBack undoes Swap: each path gets its pre-restore copy back, and a path
// that did not exist before is removed. Without a swap record nothing was
// swapped. The staging directory stays for Discard. It returns the paths it
// could not put back (wrapped in ErrNoCopy).
func (t Tree) SwapBack() error {
	rec, err := t.readRecord()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing swapped; Discard removes the staged copies
	}
	if err != nil {
		return err
	}
	var missing []string
	absent := t.absent()
	for _, r := range rec.Paths {
		target, pre := t.Target(r.Path), t.PreRestore(r.Path)
		hasPre, err := fsutil.Exists(pre)
		if err != nil {
			return fmt.Errorf("staging: %w", err)
		}
		if slices.Contains(absent, r.Path) {
			if hasPre {
				if err := move(pre, target); err != nil {
					return err
				}
			}
			continue
		}
		if r.Existed && !hasPre {
			// Either never swapped (target is still the old copy) or the
			// kept copy is lost.
			if staged, _ := fsutil.Exists(t.Staged(r.Path)); staged {
				continue
			}
			missing = append(missing, r.Path)
			continue
		}
		if hasTarget, _ := fsutil.Exists(target); hasTarget {
			if staged, _ := fsutil.Exists(t.Staged(r.Path)); !staged {
				// The restored copy is in place: move it out of the way.
				if err := os.Rename(target, t.Staged(r.Path)); err != nil {
					return fmt.Errorf("staging: move restored %s aside: %w", target, err)
				}
			}
		}
		if r.Existed {
			if err := os.Rename(pre, target); err != nil {
				return fmt.Errorf("staging: put %s back: %w", pre, err)
			}
		}
		if err := fsutil.SyncDir(filepath.Dir(target)); err != nil {
			return fmt.Errorf("staging: %w", err)
		}
	}
	if len(missing) > 0 {
		return &NoCopyError{Paths: missing}
	}
	return t.dropSwap(rec)
}

// dropSwap removes the staged copies and the swap record once a swap has
// been undone; the rest of the staging directory (the database step's
// markers) stays for Discard, which then removes it.
func (t Tree) dropSwap(rec *record) error {
	for _, r := range rec.Paths {
		if t.borrowed() {
			break // given back by Discard
		}
		if err := os.RemoveAll(t.Staged(r.Path)); err != nil {
			return fmt.Errorf("staging: remove %s: %w", t.Staged(r.Path), err)
		}
	}
	if err := os.Remove(t.recordPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("staging: remove swap record: %w", err)
	}
	return nil
}

// Forget drops the swap record and the staged copies after the paths were
// put back some other way (from another backup), keeping the markers.
func (t Tree) Forget() error {
	rec, err := t.readRecord()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return t.dropSwap(rec)
}

// Cleanup removes the pre-restore copies and the staging directory, once the
// restore has been verified.
func (t Tree) Cleanup() error {
	rec, err := t.readRecord()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if rec != nil {
		for _, r := range rec.Paths {
			if err := os.RemoveAll(t.PreRestore(r.Path)); err != nil {
				return fmt.Errorf("staging: remove %s: %w", t.PreRestore(r.Path), err)
			}
		}
	}
	if err := os.RemoveAll(t.Dir()); err != nil {
		return fmt.Errorf("staging: remove %s: %w", t.Dir(), err)
	}
	return nil
}

func (t Tree) readRecord() (*record, error) {
	data, err := os.ReadFile(t.recordPath())
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("staging: swap record %s: %w", t.recordPath(), err)
	}
	return &rec, nil
}
