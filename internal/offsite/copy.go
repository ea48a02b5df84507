package offsite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"filippo.io/age"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/project-vulcan/vulcan-backup/internal/faultpoint"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/store"
)

// Copier uploads verified local backups.
type Copier struct {
	Bucket     *Bucket
	Recipients []age.Recipient
	Names      *Namer
	// Parallel is how many objects are uploaded at once (at least 1).
	Parallel int
	// Limit caps the upload rate in bytes a second; 0 is no limit.
	Limit int64
	// Retain, where the bucket has Object Lock, is how long each object is
	// locked from its upload; 0 writes no retention.
	Retain time.Duration
	// Progress, if set, is called after every object.
	Progress func(CopyProgress)
}

// CopyProgress counts a copy's work so far.
type CopyProgress struct {
	Objects      int   `json:"objects"`       // the backup's objects
	Done         int   `json:"done"`          // uploaded or found present
	Uploaded     int   `json:"uploaded"`      // uploaded by this copy
	Bytes        int64 `json:"bytes"`         // the archive's size
	SentBytes    int64 `json:"sent_bytes"`    // plain bytes uploaded by this copy
	DedupedBytes int64 `json:"deduped_bytes"` // plain bytes the bucket held already
}

// ErrLocalDamaged is a local backup that no longer matches its manifest.
var ErrLocalDamaged = errors.New("the local backup is damaged")

// IndexKey and ManifestKey are where a backup's index and manifest go.
func IndexKey(id string) string    { return "backups/" + id + "/index.age" }
func ManifestKey(id string) string { return "backups/" + id + "/manifest.age" }

// chunkSize cuts an archive with no member table into objects.
const chunkSize = 8 << 20

// Copy uploads backup id from dir: every member the bucket lacks, then the
// manifest, then the index, which makes the copy exist. A copy that was cut
// short uploads only what is missing; one that completed does nothing.
// The bytes uploaded are the local archive's, each checked against its
// recorded SHA-256 first, so a damaged local archive is refused, not copied.
func (c *Copier) Copy(ctx context.Context, dir store.Dir, id string) (_ CopyProgress, err error) {
	manifestPath := dir.ManifestPath(id)
	raw, err := os.ReadFile(manifestPath) // #nosec G304 -- the backup directory's own manifest
	if err != nil {
		return CopyProgress{}, fmt.Errorf("off-site copy of %s: %w", id, err)
	}
	m, err := manifest.ReadBackup(manifestPath)
	if err != nil {
		return CopyProgress{}, fmt.Errorf("off-site copy of %s: %w", id, err)
	}
	if m.VerifiedAt.IsZero() {
		return CopyProgress{}, fmt.Errorf("off-site copy of %s: the backup is not verified", id)
	}
	f, err := os.Open(dir.ArchivePath(id))
	if err != nil {
		return CopyProgress{}, fmt.Errorf("off-site copy of %s: %w", id, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() != m.Archive.Size {
		return CopyProgress{}, fmt.Errorf("off-site copy of %s: the archive is not the size its manifest says (%d bytes)", id, m.Archive.Size)
	}

	objs, err := c.plan(f, m)
	if err != nil {
		return CopyProgress{}, fmt.Errorf("off-site copy of %s: %w", id, err)
	}
	p := CopyProgress{Objects: len(objs), Bytes: m.Archive.Size}
	if ok, err := c.Bucket.Exists(ctx, IndexKey(id)); err != nil {
		return p, err
	} else if ok {
		p.Done, p.DedupedBytes = len(objs), m.Archive.Size
		return p, nil
	}
	// Held from the listing to the index: no collection may remove an
	// object this copy counts on while it has no index to refer to it.
	ctx, lock, err := acquire(ctx, c.Bucket, copyLockKind, gcLockKind, "the copy of "+id)
	if err != nil {
		return p, err
	}
	defer func() {
		if lerr := lock.release(ctx); lerr != nil && err == nil {
			err = lerr
		}
	}()
	present := map[string]bool{}
	if err := c.Bucket.List(ctx, "data/", func(key string, _ int64) error {
		present[key] = true
		return nil
	}); err != nil {
		return p, err
	}

	var mu sync.Mutex
	report := func(uploaded bool, n int64) (done int) {
		mu.Lock()
		defer mu.Unlock()
		p.Done++
		if uploaded {
			p.Uploaded++
			p.SentBytes += n
		} else {
			p.DedupedBytes += n
		}
		if c.Progress != nil {
			c.Progress(p)
		}
		return p.Done
	}
	limiter := newLimiter(c.Limit)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(c.Parallel, 1))
	seen := map[string]bool{}
	retain := c.retainUntil()
	for _, o := range objs {
		if present[o.Key] || seen[o.Key] {
			report(false, o.Length)
			if !retain.IsZero() && !seen[o.Key] {
				// Retained as long as this backup, which now refers to it.
				seen[o.Key] = true
				g.Go(func() error { return c.Bucket.Extend(gctx, o.Key, retain) })
			}
			continue
		}
		seen[o.Key] = true
		g.Go(func() error {
			plain := make([]byte, o.Length)
			if _, err := f.ReadAt(plain, o.Offset); err != nil {
				return fmt.Errorf("off-site copy of %s: read member at %d: %w", id, o.Offset, err)
			}
			if sum := sha256.Sum256(plain); hex.EncodeToString(sum[:]) != o.SHA256 {
				return fmt.Errorf("%w: off-site copy of %s: the local archive's member at %d (%d bytes) no longer has its recorded sha256; not copied", ErrLocalDamaged, id, o.Offset, o.Length)
			}
			if err := c.put(gctx, limiter, o.Key, plain); err != nil {
				return err
			}
			if report(true, o.Length) >= (len(objs)+1)/2 {
				faultpoint.Hit(faultpoint.OffsiteUploading)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return p, err
	}

	ix := Index{Format: IndexFormat, Backup: id, CreatedAt: m.CreatedAt, NameKey: c.Names.ID, Objects: objs}
	ix.Archive.SHA256, ix.Archive.Size = m.Archive.SHA256, m.Archive.Size
	data, err := json.Marshal(ix)
	if err != nil {
		return p, err
	}
	if err := c.put(ctx, limiter, ManifestKey(id), raw); err != nil {
		return p, err
	}
	refs := Refs{Backup: id, Kind: m.Kind, CreatedAt: m.CreatedAt, Database: m.Database != nil, Keys: make([]string, len(objs))}
	for i, o := range objs {
		refs.Keys[i] = o.Key
	}
	sealedRefs, err := c.Names.sealRefs(refs)
	if err != nil {
		return p, err
	}
	if err := c.Bucket.Put(ctx, RefsKey(id), sealedRefs, c.retainUntil()); err != nil {
		return p, err
	}
	if err := c.put(ctx, limiter, IndexKey(id), data); err != nil {
		return p, err
	}
	return p, nil
}

// plan lists the backup's objects: one a member, or fixed chunks (hashed
// here) for an archive that predates member tables.
func (c *Copier) plan(f *os.File, m *manifest.Manifest) ([]Object, error) {
	var objs []Object
	if m.Members != nil && len(m.Members.List) > 0 {
		for _, x := range m.Members.List {
			objs = append(objs, Object{Key: c.Names.ObjectKey(x.SHA256), Offset: x.Offset, Length: x.Length, SHA256: x.SHA256})
		}
		return objs, nil
	}
	buf := make([]byte, chunkSize)
	for off := int64(0); off < m.Archive.Size; off += chunkSize {
		n := min(chunkSize, m.Archive.Size-off)
		if _, err := f.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read archive at %d: %w", off, err)
		}
		sum := sha256.Sum256(buf[:n])
		h := hex.EncodeToString(sum[:])
		objs = append(objs, Object{Key: c.Names.ObjectKey(h), Offset: off, Length: n, SHA256: h})
	}
	return objs, nil
}

func (c *Copier) put(ctx context.Context, l *rate.Limiter, key string, plain []byte) error {
	sealed, err := seal(plain, c.Recipients)
	if err != nil {
		return err
	}
	if err := wait(ctx, l, len(sealed)); err != nil {
		return err
	}
	return c.Bucket.Put(ctx, key, sealed, c.retainUntil())
}

// retainUntil is the Object Lock retention of an object written now; zero
// where the bucket has no lock.
func (c *Copier) retainUntil() time.Time {
	if c.Retain <= 0 {
		return time.Time{}
	}
	return time.Now().Add(c.Retain)
}

// newLimiter is a token bucket of limit bytes a second; nil for none.
func newLimiter(limit int64) *rate.Limiter {
	if limit <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(limit), int(min(limit, 1<<20)))
}

// wait takes n bytes' worth of tokens, in bursts the limiter allows.
func wait(ctx context.Context, l *rate.Limiter, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
