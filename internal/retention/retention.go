// Package retention decides which backups to delete. It is a pure function of
// a list of backups, a policy and the current time, so it is tested as a table.
package retention

import (
	"errors"
	"sort"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// Backup is what retention needs to know of one backup.
type Backup struct {
	ID        string
	Kind      manifest.Kind
	CreatedAt time.Time
	Verified  bool
}

// Policy says how long backups are kept.
type Policy struct {
	// Days a backup is kept after it was created; at least 1.
	Days int
}

// ErrPolicy marks a policy that would delete too much.
var ErrPolicy = errors.New("invalid retention policy")

// Plan splits backups into those to keep and those to delete. A backup is
// deleted when it is older than p.Days, except that the newest verified
// backup is always kept. Emergency backups are counted apart: they neither
// take the place of the newest regular backup nor are pruned by it.
// Both lists are sorted newest first.
func Plan(backups []Backup, p Policy, now time.Time) (keep, remove []Backup, err error) {
	if p.Days < 1 {
		return nil, nil, errors.Join(ErrPolicy, errors.New("retention must be at least 1 day"))
	}
	sorted := append([]Backup(nil), backups...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if !sorted[i].CreatedAt.Equal(sorted[j].CreatedAt) {
			return sorted[i].CreatedAt.After(sorted[j].CreatedAt)
		}
		return sorted[i].ID > sorted[j].ID
	})
	cutoff := now.Add(-time.Duration(p.Days) * 24 * time.Hour)
	newestKept := map[bool]bool{} // by emergency-ness
	for _, b := range sorted {
		emergency := b.Kind == manifest.KindEmergency
		switch {
		case b.Verified && !newestKept[emergency]:
			newestKept[emergency] = true
			keep = append(keep, b)
		case !b.CreatedAt.Before(cutoff):
			keep = append(keep, b)
		default:
			remove = append(remove, b)
		}
	}
	return keep, remove, nil
}
