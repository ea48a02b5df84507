package offsite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"golang.org/x/sync/errgroup"

	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/store"
)

// Reader reads backups back from the bucket; it needs the identity.
type Reader struct {
	Bucket     *Bucket
	Identities []age.Identity
	// Parallel is how many objects are downloaded at once (at least 1).
	Parallel int
	// Progress, if set, is called after every object.
	Progress func(done, objects int, bytes int64)
}

// ErrDamaged is an object (or index or manifest) that is missing, does not
// decrypt, or does not hold what the index says.
var ErrDamaged = errors.New("off-site copy damaged")

// Remote is one backup in the bucket.
type Remote struct {
	ID string `json:"id"`
	// CopiedAt is when its index was written: when the copy completed.
	CopiedAt time.Time `json:"copied_at"`
}

// List returns the backups whose copy completed (their index is there),
// oldest first. It needs no identity.
func List(ctx context.Context, b *Bucket) ([]Remote, error) {
	var out []Remote
	err := b.List(ctx, "backups/", func(key string, _ int64) error {
		id, ok := strings.CutSuffix(strings.TrimPrefix(key, "backups/"), "/index.age")
		if ok && manifest.ValidID(id) {
			out = append(out, Remote{ID: id})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		if t, err := manifest.ParseID(out[i].ID); err == nil {
			out[i].CopiedAt = t
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Open reads and checks a backup's index and manifest: they decrypt, parse,
// and agree with each other.
func (r *Reader) Open(ctx context.Context, id string) (*Index, *manifest.Manifest, []byte, error) {
	if !manifest.ValidID(id) {
		return nil, nil, nil, fmt.Errorf("%q is not a backup id", id)
	}
	sealed, err := r.Bucket.Get(ctx, IndexKey(id), 256<<20)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil, fmt.Errorf("backup %s is not in the off-site store %s (no completed copy): %w", id, r.Bucket.Location(), ErrNotFound)
	} else if err != nil {
		return nil, nil, nil, err
	}
	plain, err := open(sealed, r.Identities)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: backup %s: index %s: %v", ErrDamaged, id, IndexKey(id), err)
	}
	ix, err := decodeIndex(plain, id)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	sealed, err = r.Bucket.Get(ctx, ManifestKey(id), 256<<20)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil, fmt.Errorf("%w: backup %s: manifest %s is missing", ErrDamaged, id, ManifestKey(id))
	} else if err != nil {
		return nil, nil, nil, err
	}
	raw, err := open(sealed, r.Identities)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: backup %s: manifest %s: %v", ErrDamaged, id, ManifestKey(id), err)
	}
	m, err := manifest.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: backup %s: manifest %s: %v", ErrDamaged, id, ManifestKey(id), err)
	}
	if m.ID != id || m.Archive.SHA256 != ix.Archive.SHA256 || m.Archive.Size != ix.Archive.Size {
		return nil, nil, nil, fmt.Errorf("%w: backup %s: its manifest and index describe different archives", ErrDamaged, id)
	}
	return ix, m, raw, nil
}

// object downloads and decrypts one object and checks it against the index.
func (r *Reader) object(ctx context.Context, id string, o Object) ([]byte, error) {
	sealed, err := r.Bucket.Get(ctx, o.Key, 2*maxObject)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: backup %s: object %s (archive bytes %d-%d) is missing", ErrDamaged, id, o.Key, o.Offset, o.Offset+o.Length)
	} else if err != nil {
		return nil, err
	}
	plain, err := open(sealed, r.Identities)
	if err != nil {
		return nil, fmt.Errorf("%w: backup %s: object %s (archive bytes %d-%d): %v", ErrDamaged, id, o.Key, o.Offset, o.Offset+o.Length, err)
	}
	if sum := sha256.Sum256(plain); int64(len(plain)) != o.Length || hex.EncodeToString(sum[:]) != o.SHA256 {
		return nil, fmt.Errorf("%w: backup %s: object %s (archive bytes %d-%d) does not hold the member its index names", ErrDamaged, id, o.Key, o.Offset, o.Offset+o.Length)
	}
	return plain, nil
}

// inOrder downloads the objects in parallel, at most twice Parallel ahead
// of the slowest, and hands them to fn one at a time in their order.
func (r *Reader) inOrder(ctx context.Context, id string, objs []Object, fn func(Object, []byte) error) error {
	n := max(r.Parallel, 1)
	slots := make([]chan []byte, len(objs))
	for i := range slots {
		slots[i] = make(chan []byte, 1)
	}
	ahead := make(chan struct{}, 2*n)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		fetch, fctx := errgroup.WithContext(gctx)
		fetch.SetLimit(n)
		for i, o := range objs {
			select {
			case ahead <- struct{}{}:
			case <-fctx.Done():
				return fetch.Wait() // the first error, which stopped the rest
			}
			fetch.Go(func() error {
				plain, err := r.object(fctx, id, o)
				if err != nil {
					return err
				}
				slots[i] <- plain
				return nil
			})
		}
		return fetch.Wait()
	})
	g.Go(func() error {
		bytes := int64(0)
		for i, o := range objs {
			select {
			case plain := <-slots[i]:
				if err := fn(o, plain); err != nil {
					return err
				}
			case <-gctx.Done():
				return gctx.Err()
			}
			<-ahead
			bytes += o.Length
			if r.Progress != nil {
				r.Progress(i+1, len(objs), bytes)
			}
		}
		return nil
	})
	return g.Wait()
}

// Fetch downloads backup id into dir: the archive rebuilt from its objects
// under a temporary name, checked whole against the manifest's SHA-256 as
// it is written, fsynced, renamed into place, and the manifest written last, so dir holds
// the backup complete or not at all. The database dump is inside the
// archive; the standalone copy beside it is not recreated.
func (r *Reader) Fetch(ctx context.Context, dir store.Dir, id string) (*manifest.Manifest, error) {
	ix, m, raw, err := r.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := dir.Ensure(); err != nil {
		return nil, err
	}
	final := dir.ArchivePath(id)
	if ok, err := fsutil.Exists(dir.ManifestPath(id)); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("backup %s is in %s already; not fetched", id, dir.Path)
		}
		return nil, err
	}
	tmp := fsutil.TempName(final)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600) // #nosec G304 -- the backup directory's own temporary name
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", id, err)
	}
	defer os.Remove(tmp) // #nosec G104 -- gone already once renamed
	defer f.Close()
	// Written in the index's order, hashed as written: the objects tile
	// the archive (decodeIndex checks), so the hash is the archive's.
	h := sha256.New()
	if err := r.inOrder(ctx, id, ix.Objects, func(_ Object, plain []byte) error {
		h.Write(plain) // #nosec G104 -- hash.Hash.Write never returns an error
		_, err := f.Write(plain)
		return err
	}); err != nil {
		return nil, err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != m.Archive.SHA256 {
		return nil, fmt.Errorf("%w: backup %s: the rebuilt archive has sha256 %s, its manifest says %s", ErrDamaged, id, sum, m.Archive.SHA256)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", id, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", id, err)
	}
	if err := fsutil.Commit(tmp, final); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", id, err)
	}
	if err := fsutil.WriteFileAtomic(dir.ManifestPath(id), raw, 0o600); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", id, err)
	}
	return m, nil
}

// VerifyReport is what a remote verification checked.
type VerifyReport struct {
	Backup  string `json:"backup"`
	Objects int    `json:"objects"`
	Checked int    `json:"checked"`
	Bytes   int64  `json:"bytes"`
}

// Verify downloads and checks backup id's objects: all of them, or a random
// share (0 < sample < 1) as restic's --read-data-subset does. The index and
// manifest are always read. Every problem found is reported, not only the
// first.
func (r *Reader) Verify(ctx context.Context, id string, sample float64) (VerifyReport, error) {
	ix, _, _, err := r.Open(ctx, id)
	if err != nil {
		return VerifyReport{Backup: id}, err
	}
	rep := VerifyReport{Backup: id, Objects: len(ix.Objects)}
	objs := ix.Objects
	if sample > 0 && sample < 1 {
		objs = nil
		for _, o := range ix.Objects {
			if rand.Float64() < sample { // #nosec G404 -- choosing a sample, not a secret
				objs = append(objs, o)
			}
		}
		if len(objs) == 0 && len(ix.Objects) > 0 {
			objs = ix.Objects[rand.IntN(len(ix.Objects)):][:1] // #nosec G404 -- choosing a sample, not a secret
		}
	}
	var mu sync.Mutex
	var problems []string
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(r.Parallel, 1))
	for _, o := range objs {
		g.Go(func() error {
			_, err := r.object(gctx, id, o)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrDamaged):
				problems = append(problems, strings.TrimPrefix(err.Error(), ErrDamaged.Error()+": "))
			case err != nil:
				return err
			default:
				rep.Checked++
				rep.Bytes += o.Length
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rep, err
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return rep, fmt.Errorf("%w: %d of %d objects checked: %s", ErrDamaged, len(problems), len(objs), strings.Join(problems, "; "))
	}
	return rep, nil
}
