package offsite

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/retention"
)

// Collector applies the retention policy to the remote and then removes
// the objects no remaining backup refers to. It holds the collection lock
// throughout, so no copy lists the objects while it runs; each step is
// idempotent, so a collection cut short is finished by the next one.
type Collector struct {
	Bucket *Bucket
	Names  *Namer
	// Days is the retention policy (VULCAN_RETENTION_DAYS).
	Days int
	// Now is the time retention counts from; zero means now.
	Now time.Time
	// Progress is told after each object removed.
	Progress func(CollectReport)
}

// CollectReport is what a collection did.
type CollectReport struct {
	// Deleted are the remote backups retention removed; Kept the rest.
	Deleted []string `json:"deleted"`
	Kept    []string `json:"kept"`
	// Removed objects (and their bytes) no backup refers to any more.
	Removed      int   `json:"removed"`
	RemovedBytes int64 `json:"removed_bytes"`
	// Locked are objects Object Lock keeps until their retention passes.
	Locked int `json:"locked"`
	// Skipped says why unreferenced objects were left: a backup whose
	// references this worker cannot read.
	Skipped string `json:"skipped,omitempty"`
}

// Collect runs the remote retention and the garbage collection.
func (c *Collector) Collect(ctx context.Context) (_ CollectReport, err error) {
	rep := CollectReport{Deleted: []string{}, Kept: []string{}}
	ctx, lock, err := acquire(ctx, c.Bucket, gcLockKind, copyLockKind, "garbage collection")
	if err != nil {
		return rep, err
	}
	defer func() {
		if lerr := lock.release(ctx); lerr != nil && err == nil {
			err = lerr
		}
	}()

	// Every backup's objects under backups/<id>/, whole or half removed.
	parts := map[string]map[string]bool{}
	if err := c.Bucket.List(ctx, "backups/", func(key string, _ int64) error {
		rest := strings.TrimPrefix(key, "backups/")
		id, name, ok := strings.Cut(rest, "/")
		if ok && manifest.ValidID(id) {
			if parts[id] == nil {
				parts[id] = map[string]bool{}
			}
			parts[id][name] = true
		}
		return nil
	}); err != nil {
		return rep, err
	}

	// Retention over the backups whose copy completed. Removing the index
	// first ends the backup; its manifest and refs are tidied after.
	refs := map[string]*Refs{}
	var complete []retention.Backup
	for id, p := range parts {
		if !p["index.age"] {
			continue
		}
		r, rerr := c.readRefs(ctx, id, p)
		if rerr != nil {
			rep.Skipped = rerr.Error()
			created, _ := manifest.ParseID(id)
			// Kept as if it held a dump: retention then never removes the
			// newest backup with one on a guess.
			r = &Refs{Backup: id, Kind: manifest.KindScheduled, CreatedAt: created, Database: true}
		}
		refs[id] = r
		complete = append(complete, retention.Backup{ID: id, Kind: r.Kind, CreatedAt: r.CreatedAt, Verified: true, Database: r.Database})
	}
	now := c.Now
	if now.IsZero() {
		now = time.Now()
	}
	keep, remove, err := retention.Plan(complete, retention.Policy{Days: c.Days}, now)
	if err != nil {
		return rep, err
	}
	for _, b := range keep {
		rep.Kept = append(rep.Kept, b.ID)
	}
	for _, b := range remove {
		locked, err := c.remove(ctx, IndexKey(b.ID), &rep)
		if err != nil {
			return rep, err
		}
		if locked {
			rep.Kept = append(rep.Kept, b.ID)
			continue
		}
		parts[b.ID]["index.age"] = false
		delete(refs, b.ID)
		rep.Deleted = append(rep.Deleted, b.ID)
	}
	sort.Strings(rep.Deleted)
	sort.Strings(rep.Kept)

	// The rest of every backup without an index: one retention removed
	// now or in a collection cut short, or a copy that died before its
	// index (it uploads them again when it resumes).
	for id, p := range parts {
		if p["index.age"] {
			continue
		}
		for name, there := range p {
			if there && name != "index.age" {
				if _, err := c.remove(ctx, "backups/"+id+"/"+name, &rep); err != nil {
					return rep, err
				}
			}
		}
	}

	if rep.Skipped != "" {
		rep.Skipped = "unreferenced objects are left: " + rep.Skipped
		return rep, nil
	}
	used := map[string]bool{}
	for _, r := range refs {
		for _, k := range r.Keys {
			used[k] = true
		}
	}
	type object struct {
		key  string
		size int64
	}
	var garbage []object
	if err := c.Bucket.List(ctx, "data/", func(key string, size int64) error {
		if !used[key] {
			garbage = append(garbage, object{key, size})
		}
		return nil
	}); err != nil {
		return rep, err
	}
	for _, o := range garbage {
		locked, err := c.remove(ctx, o.key, &rep)
		if err != nil {
			return rep, err
		}
		if !locked {
			rep.Removed++
			rep.RemovedBytes += o.size
			if c.Progress != nil {
				c.Progress(rep)
			}
		}
	}
	return rep, nil
}

// readRefs reads backup id's refs; an error says why its objects cannot be
// told apart from garbage.
func (c *Collector) readRefs(ctx context.Context, id string, parts map[string]bool) (*Refs, error) {
	if !parts["refs.bin"] {
		return nil, fmt.Errorf("backup %s has no refs object", id)
	}
	data, err := c.Bucket.Get(ctx, RefsKey(id), 64<<20)
	if err != nil {
		return nil, err
	}
	r, err := c.Names.openRefs(data, id)
	if errors.Is(err, errOtherKey) {
		return nil, fmt.Errorf("backup %s was copied with another name key (a worker that lost its key cache and had no identity)", id)
	}
	return r, err
}

// remove deletes key; an object Object Lock still retains is left and
// counted, not an error.
func (c *Collector) remove(ctx context.Context, key string, rep *CollectReport) (locked bool, err error) {
	err = c.Bucket.Remove(ctx, key)
	var cfg *ConfigError
	if errors.As(err, &cfg) && c.Bucket.retained(ctx, key) {
		rep.Locked++
		return true, nil
	}
	return false, err
}
