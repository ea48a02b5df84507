package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// The off-site state of the backup directory, under offsite/: a mark for
// every committed backup whose off-site copy has not completed (retention
// keeps those), and a record of the last copy that did.

// OffsitePath is the off-site state directory.
func (d Dir) OffsitePath() string { return filepath.Join(d.Path, "offsite") }

func (d Dir) pendingPath(id string) string {
	return filepath.Join(d.OffsitePath(), "pending", id)
}

// MarkOffsitePending records that backup id is still to be copied off-site.
func (d Dir) MarkOffsitePending(id string) error {
	if !manifest.ValidID(id) {
		return fmt.Errorf("mark off-site copy: %q is not a backup id", id)
	}
	if err := os.MkdirAll(filepath.Dir(d.pendingPath(id)), 0o700); err != nil {
		return fmt.Errorf("mark off-site copy of %s: %w", id, err)
	}
	if err := fsutil.WriteFileAtomic(d.pendingPath(id), nil, 0o600); err != nil {
		return fmt.Errorf("mark off-site copy of %s: %w", id, err)
	}
	return nil
}

// ClearOffsitePending records that backup id's copy completed (or that the
// backup is gone).
func (d Dir) ClearOffsitePending(id string) error {
	if err := os.Remove(d.pendingPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clear off-site mark of %s: %w", id, err)
	}
	return nil
}

// OffsitePending lists the backups still to be copied, oldest first.
func (d Dir) OffsitePending() ([]string, error) {
	entries, err := os.ReadDir(filepath.Dir(d.pendingPath("x")))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("off-site marks: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if manifest.ValidID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// OffsiteCopy is the record of a completed off-site copy.
type OffsiteCopy struct {
	ID       string    `json:"id"`
	CopiedAt time.Time `json:"copied_at"`
	Location string    `json:"location"`
	Objects  int       `json:"objects"`
	Uploaded int       `json:"uploaded"`
	// SentBytes and DedupedBytes are the archive's bytes uploaded and
	// found in the bucket already (before encryption).
	SentBytes    int64 `json:"sent_bytes"`
	DedupedBytes int64 `json:"deduped_bytes"`
}

func (d Dir) lastOffsitePath() string { return filepath.Join(d.OffsitePath(), "last.json") }

// WriteLastOffsite records c as the last completed copy.
func (d Dir) WriteLastOffsite(c OffsiteCopy) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.OffsitePath(), 0o700); err != nil {
		return fmt.Errorf("record off-site copy: %w", err)
	}
	if err := fsutil.WriteFileAtomic(d.lastOffsitePath(), data, 0o600); err != nil {
		return fmt.Errorf("record off-site copy: %w", err)
	}
	return nil
}

// LastOffsite is the last completed copy; nil if there was none.
func (d Dir) LastOffsite() (*OffsiteCopy, error) {
	data, err := os.ReadFile(d.lastOffsitePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("last off-site copy: %w", err)
	}
	var c OffsiteCopy
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("last off-site copy %s: %w", d.lastOffsitePath(), err)
	}
	return &c, nil
}
