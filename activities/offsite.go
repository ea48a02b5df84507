package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"filippo.io/age"
	"go.temporal.io/sdk/temporal"

	"github.com/project-vulcan/vulcan-backup/internal/config"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/offsite"
	"github.com/project-vulcan/vulcan-backup/internal/store"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// Offsite is the off-site store a worker copies to (VULCAN_OFFSITE_URL).
type Offsite struct {
	Location    offsite.Location
	Credentials offsite.Credentials
	// Recipients are what objects are encrypted to; the worker holds no
	// identity unless one is configured for restores.
	Recipients []age.Recipient
	Identities []age.Identity
	// Parallel uploads, and the upload rate limit in bytes a second (0:
	// none).
	Parallel int
	Limit    int64
	// KeyCache is the worker's cache of the name key (in its state
	// directory).
	KeyCache string
}

// NewOffsite reads the off-site settings of cfg: nil, nil where
// VULCAN_OFFSITE_URL is not set. The recipients file is needed to copy and
// the identity file to read back; each is loaded where it is set, and what
// an operation needs but lacks is said when it runs (NeedRecipients,
// NeedIdentities). keyCache is the name key's cache file.
func NewOffsite(cfg config.Config, keyCache string) (*Offsite, error) {
	if cfg.OffsiteURL == "" {
		return nil, nil
	}
	loc, err := offsite.ParseURL(cfg.OffsiteURL)
	if err != nil {
		return nil, err
	}
	creds, err := offsite.CredentialsFromEnv()
	if err != nil {
		return nil, err
	}
	o := &Offsite{Location: loc, Credentials: creds, Parallel: cfg.OffsiteParallel, Limit: cfg.OffsiteLimit, KeyCache: keyCache}
	if cfg.OffsiteRecipientsFile != "" {
		if o.Recipients, err = offsite.LoadRecipients(cfg.OffsiteRecipientsFile); err != nil {
			return nil, fmt.Errorf("%s: %w", config.EnvOffsiteRecipients, err)
		}
	}
	if cfg.OffsiteIdentityFile != "" {
		if o.Identities, err = offsite.LoadIdentities(cfg.OffsiteIdentityFile); err != nil {
			return nil, fmt.Errorf("%s: %w", config.EnvOffsiteIdentity, err)
		}
	}
	return o, nil
}

// NeedRecipients says why o cannot copy: no public key to encrypt to.
func (o *Offsite) NeedRecipients() error {
	if len(o.Recipients) == 0 {
		return fmt.Errorf("%s is set but %s is not: off-site copies are encrypted to the public keys it lists", config.EnvOffsiteURL, config.EnvOffsiteRecipients)
	}
	return nil
}

// NeedIdentities says why o cannot read a copy back: no private key.
func (o *Offsite) NeedIdentities() error {
	if len(o.Identities) == 0 {
		return fmt.Errorf("reading from the off-site store needs the private key: set %s (the worker that only copies does not need it)", config.EnvOffsiteIdentity)
	}
	return nil
}

// Open connects to the store and checks that the bucket is there and the
// credentials are taken.
func (o *Offsite) Open(ctx context.Context) (*offsite.Bucket, error) {
	return offsite.Open(ctx, o.Location, o.Credentials)
}

// Reader reads backups back from b with o's identities.
func (o *Offsite) Reader(b *offsite.Bucket, progress func(done, objects int, bytes int64)) *offsite.Reader {
	return &offsite.Reader{Bucket: b, Identities: o.Identities, Parallel: o.Parallel, Progress: progress}
}

// fetchIfRemote downloads backup name from the off-site store into the
// backup directory when name is a backup id that is not here and the store
// holds it, so that a restore after the host's disk was lost can go on from
// the bucket alone. The archive is rebuilt under a temporary name and
// checked whole before the manifest makes it a backup; a damaged or missing
// object changes nothing here and fails for good, naming the object.
func (a *Activities) fetchIfRemote(ctx context.Context, hb *heartbeat, name string) error {
	if a.Offsite == nil || !manifest.ValidID(name) {
		return nil
	}
	if ok, err := fsutil.Exists(a.Backups.ManifestPath(name)); err != nil || ok {
		return classify(err)
	}
	b, err := a.Offsite.Open(ctx)
	if err != nil {
		return offsiteError(err)
	}
	if ok, err := b.Exists(ctx, offsite.IndexKey(name)); err != nil {
		return offsiteError(err)
	} else if !ok {
		return nil // not there either: the local lookup says what is missing
	}
	if err := a.Offsite.NeedIdentities(); err != nil {
		return badInput("backup %s is only in the off-site store %s: %v", name, a.Offsite.Location, err)
	}
	type fetching struct {
		Backup  string `json:"backup"`
		Source  string `json:"source"`
		Done    int    `json:"objects_done"`
		Objects int    `json:"objects"`
		Bytes   int64  `json:"bytes"`
	}
	r := a.Offsite.Reader(b, func(done, objects int, bytes int64) {
		hb.set(fetching{Backup: name, Source: a.Offsite.Location.String(), Done: done, Objects: objects, Bytes: bytes})
	})
	a.log(ctx).Info("fetching backup from the off-site store", "id", name, "location", a.Offsite.Location.String())
	m, err := r.Fetch(ctx, a.Backups, name)
	if err != nil {
		return offsiteError(err)
	}
	a.log(ctx).Info("fetched backup from the off-site store", "id", name, "bytes", m.Archive.Size)
	return nil
}

// openForCopy connects to the store and loads its name key: what copies
// and collections need.
func (a *Activities) openForCopy(ctx context.Context) (*offsite.Bucket, *offsite.Namer, error) {
	if a.Offsite == nil {
		return nil, nil, badInput("this worker has no off-site store (VULCAN_OFFSITE_URL is not set)")
	}
	o := a.Offsite
	if err := o.NeedRecipients(); err != nil {
		return nil, nil, badInput("%v", err)
	}
	b, err := o.Open(ctx)
	if err != nil {
		return nil, nil, offsiteError(err)
	}
	names, err := offsite.LoadNamer(ctx, b, o.Recipients, o.Identities, o.KeyCache)
	if err != nil {
		return nil, nil, offsiteError(err)
	}
	return b, names, nil
}

// CopyOffsite copies backup in.BackupID and every earlier backup still
// marked pending, oldest first; each mark is cleared once its copy
// completes. A copy cut short by a crash uploads, on the next attempt, only
// the objects the store does not hold.
func (a *Activities) CopyOffsite(ctx context.Context, in workflows.OffsiteInput) (workflows.OffsiteResult, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	b, names, err := a.openForCopy(ctx)
	if err != nil {
		return workflows.OffsiteResult{}, err
	}
	o := a.Offsite
	res := workflows.OffsiteResult{Copied: []string{}, Location: o.Location.String()}
	ids, err := a.Backups.OffsitePending()
	if err != nil {
		return res, classify(err)
	}
	for _, id := range ids {
		if ok, err := fsutil.Exists(a.Backups.ManifestPath(id)); err != nil {
			return res, classify(err)
		} else if !ok {
			// Deleted by hand since: nothing to copy any more.
			a.log(ctx).Warn("off-site copy: backup marked pending is gone", "id", id)
			if err := a.Backups.ClearOffsitePending(id); err != nil {
				return res, classify(err)
			}
			continue
		}
		c := &offsite.Copier{Bucket: b, Recipients: o.Recipients, Names: names, Parallel: o.Parallel, Limit: o.Limit,
			Retain: a.offsiteRetain(ctx, b),
			Progress: func(p offsite.CopyProgress) {
				hb.set(struct {
					Backup string `json:"backup"`
					offsite.CopyProgress
				}{id, p})
			}}
		p, err := c.Copy(ctx, a.Backups, id)
		if errors.Is(err, offsite.ErrBusy) {
			return res, temporal.NewApplicationError(err.Error(), workflows.ErrTypeOffsite) // retried: the collection ends soon
		}
		if err != nil {
			return res, offsiteError(err)
		}
		if err := a.Backups.ClearOffsitePending(id); err != nil {
			return res, classify(err)
		}
		res.Copied = append(res.Copied, id)
		res.Objects += p.Objects
		res.Uploaded += p.Uploaded
		res.SentBytes += p.SentBytes
		res.DedupedBytes += p.DedupedBytes
		now := time.Now().UTC()
		if err := a.Backups.WriteLastOffsite(store.OffsiteCopy{ID: id, CopiedAt: now, Location: res.Location, Objects: p.Objects,
			Uploaded: p.Uploaded, SentBytes: p.SentBytes, DedupedBytes: p.DedupedBytes}); err != nil {
			return res, classify(err)
		}
		a.Metrics.OffsiteCopied(now, p.SentBytes, p.DedupedBytes, p.Uploaded)
		a.log(ctx).Info("off-site copy completed", "id", id, "location", res.Location, "objects", p.Objects, "uploaded", p.Uploaded,
			"sent_bytes", p.SentBytes, "deduped_bytes", p.DedupedBytes)
	}
	return res, nil
}

// CollectOffsite applies the retention policy to the off-site store and
// removes the objects no remaining backup refers to. A copy running at the
// same time makes it step aside (said in the result, not an error); the
// next copy's collection does the work.
func (a *Activities) CollectOffsite(ctx context.Context, _ workflows.OffsiteInput) (workflows.CollectResult, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	b, names, err := a.openForCopy(ctx)
	if err != nil {
		return workflows.CollectResult{}, err
	}
	c := &offsite.Collector{Bucket: b, Names: names, Days: a.RetentionDays, Progress: func(r offsite.CollectReport) { hb.set(r) }}
	rep, err := c.Collect(ctx)
	out := workflows.CollectResult{Deleted: rep.Deleted, Kept: rep.Kept, Removed: rep.Removed, RemovedBytes: rep.RemovedBytes,
		Locked: rep.Locked, Skipped: rep.Skipped}
	if errors.Is(err, offsite.ErrBusy) {
		out.Skipped = err.Error()
		a.log(ctx).Info("off-site collection stepped aside", "reason", err)
		return out, nil
	}
	if err != nil {
		return out, offsiteError(err)
	}
	if out.Skipped != "" {
		a.log(ctx).Warn("off-site collection left objects", "reason", out.Skipped)
	}
	a.log(ctx).Info("off-site retention and collection done", "deleted", out.Deleted, "removed_objects", out.Removed,
		"removed_bytes", out.RemovedBytes, "locked", out.Locked)
	return out, nil
}

// offsiteRetain is how long objects are locked where the bucket has Object
// Lock: the retention policy and a day, so that a backup retention still
// keeps cannot be deleted with the worker's credentials.
func (a *Activities) offsiteRetain(ctx context.Context, b *offsite.Bucket) time.Duration {
	if !b.Locked(ctx) {
		return 0
	}
	return time.Duration(a.RetentionDays+1) * 24 * time.Hour
}

// offsiteError sorts an off-site failure: a store that refuses is fixable by
// an operator and retried, pending; a damaged local backup is an integrity
// failure no retry fixes; the rest (the network) is retried.
func offsiteError(err error) error {
	var cfg *offsite.ConfigError
	switch {
	case errors.As(err, &cfg):
		return temporal.NewApplicationError(err.Error(), workflows.ErrTypeOffsite)
	case errors.Is(err, offsite.ErrLocalDamaged), errors.Is(err, offsite.ErrDamaged):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeIntegrity, nil)
	}
	return classify(fmt.Errorf("off-site copy: %w", err))
}
