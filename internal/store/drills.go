package store

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// Drill is what a restore drill's report (drills/<id>.json) says, as far as
// a listing needs it.
type Drill struct {
	DrillID   string    `json:"drill_id"`
	BackupID  string    `json:"backup_id"`
	StartedAt time.Time `json:"started_at"`
	Passed    bool      `json:"passed"`
	TotalS    float64   `json:"total_seconds"`
	WithinRTO bool      `json:"within_rto"`
	RTOS      float64   `json:"rto_seconds"`
	Error     string    `json:"error,omitempty"`
}

// DrillsPath is the directory of the drill reports.
func (d Dir) DrillsPath() string { return filepath.Join(d.Path, "drills") }

// Drills reads every drill report, newest first; unreadable ones are
// skipped.
func (d Dir) Drills() ([]Drill, error) {
	entries, err := os.ReadDir(d.DrillsPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Drill
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !manifest.ValidID(id) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(d.DrillsPath(), e.Name())) // #nosec G304 -- a file of the backup directory's drills/
		if err != nil {
			continue
		}
		var r Drill
		if json.Unmarshal(data, &r) == nil && r.DrillID == id {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DrillID > out[j].DrillID })
	return out, nil
}

// DrillRetention is how long drill reports are kept: a year of monthly
// drills is the evidence an audit asks for.
const DrillRetention = 366 * 24 * time.Hour

// PruneDrills removes the drill reports older than keep at now, except the
// newest, and returns the files removed.
func (d Dir) PruneDrills(now time.Time, keep time.Duration) ([]string, error) {
	entries, err := os.ReadDir(d.DrillsPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && manifest.ValidID(id) {
			ids = append(ids, id)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	var removed []string
	for i, id := range ids {
		at, _ := manifest.ParseID(id)
		if i == 0 || now.Sub(at) <= keep {
			continue
		}
		p := filepath.Join(d.DrillsPath(), id+".json")
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, p)
	}
	return removed, nil
}
