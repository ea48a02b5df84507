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

// An undo of a restore borrows that restore's pre-restore copies as its own
// staged copies: they are renamed into the undo's staging directory, swapped
// in like an extracted backup, and, if the undo does not complete, renamed
// back to their old names. A borrowed copy is never removed: until the
// undo's own swap is verified it is the only copy of that state.

// loan is the record of what a staging directory borrowed.
type loan struct {
	// From is the id of the restore whose pre-restore copies these are.
	From string `json:"from"`
	// Paths are the borrowed copies; Absent the paths that did not exist
	// before restore From, which the undo removes (keeping them as its own
	// pre-restore copies).
	Paths  []string `json:"paths"`
	Absent []string `json:"absent,omitempty"`
}

func (t Tree) loanPath() string { return filepath.Join(t.Dir(), "borrowed.json") }

func (t Tree) readLoan() (*loan, error) {
	data, err := os.ReadFile(t.loanPath())
	if err != nil {
		return nil, err
	}
	var l loan
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("staging: loan record %s: %w", t.loanPath(), err)
	}
	return &l, nil
}

// borrowed reports whether t's staged copies are borrowed (t is an undo).
func (t Tree) borrowed() bool {
	ok, _ := fsutil.Exists(t.loanPath())
	return ok
}

// absent lists the paths an undo removes, or nil.
func (t Tree) absent() []string {
	if l, err := t.readLoan(); err == nil {
		return l.Absent
	}
	return nil
}

// ErrNothingToUndo means a restore has no pre-restore copies to borrow: it
// was rolled back, its undo window has ended, or it was undone already.
var ErrNothingToUndo = errors.New("no pre-restore copies to undo")

// Borrow makes the pre-restore copies of restore from the staged copies of
// t, and returns the paths the undo swaps (every path from swapped). It
// checks every copy before it moves any, so a refusal changes nothing; a
// retry after a crash carries on.
func (t Tree) Borrow(from Tree) ([]string, error) {
	if l, err := t.readLoan(); err == nil && l.From == from.ID && t.complete(from, l) {
		return slices.Concat(l.Paths, l.Absent), nil
	}
	if t.SwapStarted() {
		return nil, errors.New("staging: swap already begun; refusing to borrow")
	}
	rec, err := from.readRecord()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: restore %s kept none (rolled back, undo window ended, or not found)", ErrNothingToUndo, from.ID)
	}
	if err != nil {
		return nil, err
	}
	l := &loan{From: from.ID}
	for _, r := range rec.Paths {
		if !r.Existed {
			l.Absent = append(l.Absent, r.Path)
			continue
		}
		l.Paths = append(l.Paths, r.Path)
		hasPre, err := fsutil.Exists(from.PreRestore(r.Path))
		if err != nil {
			return nil, fmt.Errorf("staging: %w", err)
		}
		hasStaged, err := fsutil.Exists(t.Staged(r.Path))
		if err != nil {
			return nil, fmt.Errorf("staging: %w", err)
		}
		if !hasPre && !hasStaged {
			return nil, fmt.Errorf("%w: %s is missing", ErrNothingToUndo, from.PreRestore(r.Path))
		}
	}
	if err := os.Mkdir(t.Dir(), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("staging: create %s: %w", t.Dir(), err)
	}
	data, _ := json.Marshal(l)
	// Recorded before anything moves, so a discard knows what to give back.
	if err := fsutil.WriteFileAtomic(t.loanPath(), data, 0o600); err != nil {
		return nil, fmt.Errorf("staging: write loan record: %w", err)
	}
	for _, p := range l.Paths {
		if err := move(from.PreRestore(p), t.Staged(p)); err != nil {
			return nil, err
		}
	}
	return slices.Concat(l.Paths, l.Absent), nil
}

// complete reports whether every borrowed copy has arrived in t.
func (t Tree) complete(from Tree, l *loan) bool {
	for _, p := range l.Paths {
		if ok, _ := fsutil.Exists(from.PreRestore(p)); ok {
			return false
		}
	}
	return true
}

// giveBack renames the borrowed copies still staged in t back to the
// pre-restore names of the restore they came from.
func (t Tree) giveBack(l *loan) error {
	from := Tree{Root: t.Root, ID: l.From}
	for _, p := range l.Paths {
		if err := move(t.Staged(p), from.PreRestore(p)); err != nil {
			return err
		}
	}
	return nil
}

// move renames src to dst unless that has happened already; it refuses
// when both exist, as one of them would have to be removed.
func move(src, dst string) error {
	hasSrc, err := fsutil.Exists(src)
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	hasDst, err := fsutil.Exists(dst)
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	switch {
	case !hasSrc:
		return nil // moved by an earlier attempt
	case hasDst:
		return fmt.Errorf("staging: both %s and %s exist; refusing to move one over the other", src, dst)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("staging: move %s to %s: %w", src, dst, err)
	}
	if err := fsutil.SyncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	return fsutil.SyncDir(filepath.Dir(src))
}
