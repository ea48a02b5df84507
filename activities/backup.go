package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"go.temporal.io/api/operatorservice/v1"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/faultpoint"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/lock"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/pgdump"
	"github.com/project-vulcan/vulcan-backup/internal/restore"
	"github.com/project-vulcan/vulcan-backup/internal/retention"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// NoDatabaseNote is recorded when DATABASE_URL is unset.
const NoDatabaseNote = "DATABASE_URL is not set: files-only backup, no database dump"

// AcquireLock takes the operation lock for a workflow.
func (a *Activities) AcquireLock(ctx context.Context, req workflows.LockRequest) (workflows.Grant, error) {
	me := lock.Holder{Operation: req.Operation, WorkflowID: req.WorkflowID, State: req.State, Since: time.Now().UTC()}
	err := lock.Acquire(a.Backups.Path, me, func(h lock.Holder) (bool, error) { return a.lockHolderRuns(ctx, h) })
	if err != nil {
		return workflows.Grant{}, classify(err)
	}
	g := a.Failure
	g.Host, _ = os.Hostname()
	g.SearchAttributes = a.searchAttributesReady(ctx)
	return g, nil
}

// searchAttributesReady reports whether the namespace has every Vulcan
// search attribute: a workflow that set one the namespace lacks would fail.
func (a *Activities) searchAttributesReady(ctx context.Context) bool {
	if a.Temporal == nil {
		return false
	}
	resp, err := a.Temporal.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: a.Namespace})
	if err != nil {
		a.log(ctx).Warn("listing the search attributes failed", "error", err)
		return false
	}
	for _, k := range workflows.SearchAttributes {
		if _, ok := resp.GetCustomAttributes()[k.GetName()]; !ok {
			return false
		}
	}
	return true
}

// ReleaseLock drops the operation lock if the workflow holds it.
func (a *Activities) ReleaseLock(ctx context.Context, req workflows.LockRequest) error {
	return classify(lock.Release(a.Backups.Path, lock.Holder{WorkflowID: req.WorkflowID}))
}

// PrepareBackup clears the debris of crashed attempts and picks the backup id
// from the workflow's start time (a second later while that id is taken).
func (a *Activities) PrepareBackup(ctx context.Context, req workflows.BackupPlan) (workflows.BackupPlan, error) {
	if !manifest.Kind(req.Kind).Valid() {
		return req, badInput("backup kind %q: want scheduled, manual or emergency", req.Kind)
	}
	if err := a.Backups.Ensure(); err != nil {
		return req, classify(err)
	}
	removed, err := a.Backups.CleanDebris()
	if err != nil {
		return req, classify(err)
	}
	for _, p := range removed {
		a.log(ctx).Info("removed leftover of an earlier attempt", "path", p)
	}
	t := req.StartedAt.UTC()
	for {
		id := manifest.IDFor(t)
		taken := false
		for _, p := range []string{a.Backups.ManifestPath(id), a.Backups.ArchivePath(id), a.Backups.DumpPath(id)} {
			if ok, _ := fsutil.Exists(p); ok {
				taken = true
			}
		}
		if !taken {
			req.ID = id
			return req, nil
		}
		t = t.Add(time.Second)
	}
}

// dumpMetaPath holds the database section of the manifest between the dump
// and the archive step.
func (a *Activities) dumpMetaPath(id string) string {
	return fsutil.TempName(a.Backups.DumpPath(id) + ".json")
}

// readDumpRecord returns what DumpDatabase recorded for backup id, or nil if
// it has recorded nothing.
func (a *Activities) readDumpRecord(id string) (*manifest.Database, error) {
	data, err := os.ReadFile(a.dumpMetaPath(id))
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dump record: %w", err)
	}
	db := &manifest.Database{}
	if err := json.Unmarshal(data, db); err != nil {
		return nil, fmt.Errorf("read dump record: %w", err)
	}
	return db, nil
}

// DumpDatabase dumps the database in an exported snapshot into a temporary
// file, with row counts from the same snapshot. Without DATABASE_URL it says
// so and does nothing.
func (a *Activities) DumpDatabase(ctx context.Context, plan workflows.BackupPlan) (workflows.DumpOutput, error) {
	// An earlier attempt's record goes first: the archive step beside this
	// one must not append the dump this attempt is rewriting.
	if err := os.Remove(a.dumpMetaPath(plan.ID)); err != nil && !isNotExist(err) {
		return workflows.DumpOutput{}, classify(fmt.Errorf("remove the earlier attempt's dump record: %w", err))
	}
	if a.DB == nil {
		return workflows.DumpOutput{Skipped: true, Note: NoDatabaseNote}, nil
	}
	hb := startHeartbeat(ctx)
	defer hb.end()
	tmp := a.Backups.TempDumpPath(plan.ID)
	wctx, stop := hb.watch(ctx, a.stallTimeout(), "pg_dump")
	res, err := pgdump.DumpToFile(wctx, a.DB, tmp, func(n int64) { hb.set(map[string]int64{"bytes": n}) })
	err = restore.Stalled(wctx, err)
	stop()
	if err != nil {
		return workflows.DumpOutput{}, classify(fmt.Errorf("dump database %s: %w", a.DB, err))
	}
	meta := manifest.Database{
		File: manifest.DumpName(plan.ID), ArchivePath: manifest.DumpName(plan.ID), SHA256: res.SHA256, Size: res.Size,
		Format: "plain", Name: a.DB.Name, ServerVersion: res.ServerVersion, Snapshot: res.Snapshot, Tables: res.Tables,
	}
	data, _ := json.Marshal(meta)
	if err := fsutil.WriteFileAtomic(a.dumpMetaPath(plan.ID), data, 0o600); err != nil {
		return workflows.DumpOutput{}, classify(fmt.Errorf("record dump: %w", err))
	}
	a.log(ctx).Info("database dumped", "database", a.DB.String(), "bytes", res.Size, "tables", len(res.Tables))
	return workflows.DumpOutput{Size: res.Size, Tables: len(res.Tables)}, nil
}

// ArchiveStorage writes the archive of every path plus the dump under a
// temporary name, and the pending manifest describing it.
func (a *Activities) ArchiveStorage(ctx context.Context, plan workflows.BackupPlan) (workflows.ArchiveOutput, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	db, err := a.readDumpRecord(plan.ID)
	if err != nil {
		return workflows.ArchiveOutput{}, err
	}
	var wait func(context.Context) error
	switch {
	case db == nil && a.DB != nil:
		// The dump runs beside this step: append it once it is recorded.
		wait = func(ctx context.Context) error {
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				if db, err = a.readDumpRecord(plan.ID); db != nil || err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("waiting for the database dump: %w", ctx.Err())
				case <-t.C:
				}
			}
		}
	}
	opts := archive.CreateOptions{
		Root: a.Root, Paths: a.Paths, AllowMissing: plan.Kind == workflows.KindEmergency,
		Progress: func(p archive.Progress) {
			hb.set(p)
			if plan.Kind == workflows.KindEmergency && p.Files > 1 {
				faultpoint.Hit(faultpoint.EmergencyArchive)
			}
			if p.Reused > 0 {
				faultpoint.Hit(faultpoint.BackupReusing)
			}
		},
	}
	opts.Level = archiveLevel(plan.Kind)
	prev, prevFile, why := a.previousBackup(plan, opts.Level)
	if prevFile != nil {
		defer prevFile.Close()
		opts.Previous = prev
	}
	if db != nil || wait != nil {
		opts.Extra = []archive.ExtraFile{{ArchivePath: manifest.DumpName(plan.ID), Source: a.Backups.TempDumpPath(plan.ID), Wait: wait}}
	}
	tmp := a.Backups.TempArchivePath(plan.ID)
	res, err := archive.CreateFile(ctx, tmp, opts)
	if err != nil {
		if pe := (*fs.PathError)(nil); isNotExist(err) && !(errors.As(err, &pe) && pe.Path == tmp) {
			// A configured path that is missing: retrying will not help.
			return workflows.ArchiveOutput{}, badInput("create archive: %v (check VULCAN_PATHS and VULCAN_ROOT)", err)
		}
		return workflows.ArchiveOutput{}, classify(fmt.Errorf("create archive: %w", err))
	}
	if db != nil {
		if len(res.Extra) != 1 || res.Extra[0].SHA256 != db.SHA256 {
			os.Remove(tmp) // #nosec G104 -- best-effort removal of a temporary file; the error that matters is returned
			return workflows.ArchiveOutput{}, classify(fmt.Errorf("archive: the database dump changed after it was written"))
		}
	}
	m := &manifest.Manifest{
		FormatVersion: manifest.FormatVersion, ID: plan.ID, Kind: manifest.Kind(plan.Kind), CreatedAt: plan.StartedAt,
		Paths: a.Paths, Archive: manifest.FileRef{File: manifest.ArchiveName(plan.ID), SHA256: res.SHA256, Size: res.Size},
		Files: res.Entries, Database: db, Warnings: res.Warnings, TotalBytes: res.TotalBytes,
		ToolVersion: a.ToolVersion, WorkflowID: plan.WorkflowID, RunID: plan.RunID, Members: res.Members,
	}
	if res.Members.FullRead {
		res.Members.LastFullRead = plan.StartedAt
	}
	if db == nil {
		m.DatabaseNote = NoDatabaseNote
	}
	if err := m.Validate(); err != nil {
		os.Remove(tmp) // #nosec G104 -- best-effort removal of a temporary file; the error that matters is returned
		return workflows.ArchiveOutput{}, classify(fmt.Errorf("archive: %w", err))
	}
	if err := manifest.Write(a.Backups.PendingManifestPath(plan.ID), m); err != nil {
		return workflows.ArchiveOutput{}, classify(err)
	}
	a.manifests.Put(a.Backups.PendingManifestPath(plan.ID), m) // for the verify and commit steps
	for _, w := range res.Warnings {
		a.log(ctx).Warn("backup warning", "path", w.Path, "warning", w.Message)
	}
	if why == "" && res.Members.FullRead {
		why = "the previous backup is damaged (see the warnings)"
	}
	a.logReuse(ctx, res, why)
	return workflows.ArchiveOutput{Files: m.FileCount(), Bytes: res.TotalBytes, Size: res.Size, SHA256: res.SHA256, Warnings: len(res.Warnings),
		FullRead: res.Members.FullRead, ReusedBytes: res.Members.ReusedBytes}, nil
}

// VerifyBackup reads the written archive back from the disk and checks it,
// and the standalone dump, against the pending manifest. The archive's
// SHA-256 was computed on its way to the file and is not computed again
// (archive.VerifyWritten): every entry, file hash and gzip member is.
func (a *Activities) VerifyBackup(ctx context.Context, plan workflows.BackupPlan) (archive.Report, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	m, err := a.manifests.Read(a.Backups.PendingManifestPath(plan.ID))
	if err != nil {
		return archive.Report{}, classify(err)
	}
	f, err := fsutil.OpenDirect(a.Backups.TempArchivePath(plan.ID))
	if err != nil {
		return archive.Report{}, classify(fmt.Errorf("open archive: %w", err))
	}
	defer f.Close()
	// The standalone dump is hashed beside the archive's read-back.
	dumpChecked := make(chan error, 1)
	if m.Database != nil {
		go func() {
			sum, _, err := archive.HashFile(a.Backups.TempDumpPath(plan.ID))
			if err == nil && sum != m.Database.SHA256 {
				err = fmt.Errorf("%w: checksum mismatch: sha256 %s, manifest says %s", archive.ErrIntegrity, sum, m.Database.SHA256)
			}
			dumpChecked <- err
		}()
	} else {
		dumpChecked <- nil
	}
	rep, err := archive.VerifyWritten(ctx, f, m, func(p archive.Progress) { hb.set(p) })
	dumpErr := <-dumpChecked
	if err != nil {
		return archive.Report{}, classify(fmt.Errorf("verify archive: %w", err))
	}
	if dumpErr != nil {
		return archive.Report{}, classify(fmt.Errorf("verify dump: %w", dumpErr))
	}
	return *rep, nil
}

// CommitBackup makes the verified backup exist: dump and archive renamed into
// place, then the manifest (with its verification time) written last.
func (a *Activities) CommitBackup(ctx context.Context, plan workflows.BackupPlan) (workflows.BackupResult, error) {
	final := a.Backups.ManifestPath(plan.ID)
	if m, err := a.manifests.Read(final); err == nil && m.RunID == plan.RunID {
		res := a.result(m) // committed by an earlier attempt
		res.OffsitePending = a.Offsite != nil && m.Kind != manifest.KindEmergency
		return res, nil
	}
	m, err := a.manifests.Read(a.Backups.PendingManifestPath(plan.ID))
	if err != nil {
		return workflows.BackupResult{}, classify(err)
	}
	now := time.Now().UTC()
	m.VerifiedAt = now
	m.DurationSec = now.Sub(plan.StartedAt).Seconds()
	if m.Database != nil {
		if err := commitOnce(a.Backups.TempDumpPath(plan.ID), a.Backups.DumpPath(plan.ID), m.Database.Size); err != nil {
			return workflows.BackupResult{}, classify(fmt.Errorf("commit dump: %w", err))
		}
		faultpoint.Hit(faultpoint.BackupHalfCommitted)
	}
	if err := commitOnce(a.Backups.TempArchivePath(plan.ID), a.Backups.ArchivePath(plan.ID), m.Archive.Size); err != nil {
		return workflows.BackupResult{}, classify(fmt.Errorf("commit archive: %w", err))
	}
	// Marked before the manifest makes the backup exist, so that no
	// committed backup is ever left out of the off-site copies.
	offsitePending := a.Offsite != nil && m.Kind != manifest.KindEmergency
	if offsitePending {
		if err := a.Backups.MarkOffsitePending(m.ID); err != nil {
			return workflows.BackupResult{}, classify(err)
		}
	}
	if err := manifest.Write(final, m); err != nil {
		return workflows.BackupResult{}, classify(err)
	}
	a.Backups.Remember(m) // retention lists the backups next
	_ = os.Remove(a.Backups.PendingManifestPath(plan.ID))
	_ = os.Remove(a.dumpMetaPath(plan.ID))
	a.log(ctx).Info("backup committed", "id", m.ID, "kind", m.Kind, "archive", a.Backups.ArchivePath(m.ID), "bytes", m.Archive.Size)
	res := a.result(m)
	res.OffsitePending = offsitePending
	a.Metrics.BackupSucceeded(string(m.Kind), m.CreatedAt, time.Duration(m.DurationSec*float64(time.Second)), m.Archive.Size, res.Files)
	return res, nil
}

// commitOnce renames tmp into place; when an earlier attempt has already done
// so (tmp gone, name there with the verified size), it does nothing.
func commitOnce(tmp, name string, size int64) error {
	err := fsutil.Commit(tmp, name)
	if err == nil || !isNotExist(err) {
		return err
	}
	if st, serr := os.Stat(name); serr == nil && st.Size() == size {
		return nil
	}
	return err
}

func (a *Activities) result(m *manifest.Manifest) workflows.BackupResult {
	r := workflows.BackupResult{
		ID: m.ID, Kind: string(m.Kind), Archive: a.rel(a.Backups.ArchivePath(m.ID)), Manifest: a.rel(a.Backups.ManifestPath(m.ID)),
		Size: m.Archive.Size, SHA256: m.Archive.SHA256, Bytes: m.TotalBytes, Database: m.Database != nil, DatabaseNote: m.DatabaseNote,
	}
	r.Files = m.FileCount()
	r.FullRead = true
	if ms := m.Members; ms != nil {
		r.FullRead, r.ReusedBytes, r.ReusedFrom = ms.FullRead, ms.ReusedBytes, ms.ReusedFrom
	}
	for i, w := range m.Warnings {
		if i == 20 {
			r.Warnings = append(r.Warnings, fmt.Sprintf("... and %d more (see the manifest)", len(m.Warnings)-20))
			break
		}
		r.Warnings = append(r.Warnings, w.Path+": "+w.Message)
	}
	return r
}

// ApplyRetention deletes the backups the policy no longer keeps (or lists
// them, on a dry run).
func (a *Activities) ApplyRetention(ctx context.Context, in workflows.RetentionInput) (workflows.RetentionOutput, error) {
	days := in.Days
	if days <= 0 {
		days = a.RetentionDays
	}
	out := workflows.RetentionOutput{Days: days, DryRun: in.DryRun, Deleted: []string{}, Kept: []string{}}
	infos, _, err := a.Backups.List()
	if err != nil {
		return out, classify(err)
	}
	var list []retention.Backup
	for _, i := range infos {
		list = append(list, retention.Backup{ID: i.ID, Kind: i.Kind, CreatedAt: i.CreatedAt, Verified: i.Verified, Database: i.Database, Files: i.Files})
	}
	out.Warnings = retention.Changes(list)
	for _, w := range out.Warnings {
		a.log(ctx).Warn("backup differs from the one before", "warning", w)
	}
	keep, remove, err := retention.Plan(list, retention.Policy{Days: days}, time.Now())
	if err != nil {
		return out, badInput("%v", err)
	}
	for _, b := range keep {
		out.Kept = append(out.Kept, b.ID)
	}
	// A backup whose off-site copy has not completed is kept: it may be the
	// only copy the remote is still to receive.
	pending, err := a.Backups.OffsitePending()
	if err != nil {
		return out, classify(err)
	}
	for _, b := range remove {
		if slices.Contains(pending, b.ID) {
			out.Kept = append(out.Kept, b.ID)
			w := fmt.Sprintf("kept backup %s past retention: its off-site copy has not completed", b.ID)
			out.Warnings = append(out.Warnings, w)
			a.log(ctx).Warn("retention kept backup", "id", b.ID, "reason", "off-site copy pending")
			continue
		}
		if !in.DryRun {
			if err := a.Backups.Delete(b.ID); err != nil {
				return out, classify(err)
			}
			a.log(ctx).Info("retention deleted backup", "id", b.ID, "kind", b.Kind, "created_at", b.CreatedAt)
		}
		out.Deleted = append(out.Deleted, b.ID)
	}
	if !in.DryRun {
		a.Metrics.Retained(len(out.Kept))
	}
	return out, nil
}

// ListForBackup names the running containers labelled
// vulcan.stop-during-backup=true; the workflow keeps the list, so a worker
// crash between stop and start cannot lose it.
func (a *Activities) ListForBackup(ctx context.Context) ([]string, error) {
	if a.BackupServices == nil {
		return nil, nil
	}
	return a.BackupServices.Running(ctx)
}

// StopForBackup stops the named containers for the archive step.
func (a *Activities) StopForBackup(ctx context.Context, names []string) error {
	if a.BackupServices == nil || len(names) == 0 {
		return nil
	}
	hb := startHeartbeat(ctx)
	defer hb.end()
	if err := a.BackupServices.Stop(ctx, names); err != nil {
		return err
	}
	a.log(ctx).Info("stopped for the backup", "services", names)
	return nil
}

// StartAfterBackup starts the containers stopped for the archive step.
func (a *Activities) StartAfterBackup(ctx context.Context, names []string) error {
	if a.BackupServices == nil || len(names) == 0 {
		return nil
	}
	hb := startHeartbeat(ctx)
	defer hb.end()
	if err := a.BackupServices.Start(ctx, names); err != nil {
		return err
	}
	a.log(ctx).Info("started after the backup", "services", names)
	return nil
}
