// Package retention decides which backups to delete. It is a pure function of
// a list of backups, a policy and the current time, so it is tested as a table.
package retention

import (
	"errors"
	"fmt"
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
	// Database says the backup holds a database dump.
	Database bool
	// Files is how many files it holds.
	Files int
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
// backup, and the newest verified regular backup that holds a database dump,
// are always kept: a worker that lost DATABASE_URL must not prune every dump
// away. Emergency backups are counted apart: they neither take the place of
// the newest regular backup nor are pruned by it. Both lists are sorted
// newest first.
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
	dumpKept := false
	for _, b := range sorted {
		emergency := b.Kind == manifest.KindEmergency
		switch {
		case b.Verified && !newestKept[emergency]:
			newestKept[emergency] = true
			dumpKept = dumpKept || (b.Database && !emergency)
			keep = append(keep, b)
		case b.Verified && b.Database && !emergency && !dumpKept:
			dumpKept = true
			keep = append(keep, b)
		case !b.CreatedAt.Before(cutoff):
			dumpKept = dumpKept || (b.Verified && b.Database && !emergency)
			keep = append(keep, b)
		default:
			remove = append(remove, b)
		}
	}
	return keep, remove, nil
}

// Changes compares the newest verified regular backup with the one before it
// and describes what an operator should look at: a database dump that is no
// longer taken, or far fewer files than before (a path gone, a mount missing).
func Changes(backups []Backup) []string {
	var regular []Backup
	for _, b := range backups {
		if b.Verified && b.Kind != manifest.KindEmergency {
			regular = append(regular, b)
		}
	}
	sort.SliceStable(regular, func(i, j int) bool { return regular[i].CreatedAt.After(regular[j].CreatedAt) })
	if len(regular) < 2 {
		return nil
	}
	cur, prev := regular[0], regular[1]
	var out []string
	if prev.Database && !cur.Database {
		out = append(out, fmt.Sprintf("backup %s holds no database dump, the one before (%s) did: is DATABASE_URL still set?", cur.ID, prev.ID))
	}
	if prev.Files >= 10 && cur.Files*2 < prev.Files {
		out = append(out, fmt.Sprintf("backup %s holds %d files, the one before (%s) %d: is a path or mount missing?", cur.ID, cur.Files, prev.ID, prev.Files))
	}
	return out
}
