package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/project-vulcan/vulcan-backup/internal/faultpoint"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/offsite"
	"github.com/project-vulcan/vulcan-backup/internal/restore"
	"github.com/project-vulcan/vulcan-backup/internal/store"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// drill is the drill with id, as the domain package sees it.
func (a *Activities) drill(id string) restore.Drill {
	return restore.Drill{Root: a.Root, ID: id, DB: a.DB}
}

// DrillPrepare claims a scratch root (the first free second from the one
// asked for: two drills may start in the same second, and no lock keeps
// them apart), picks the backup to drill (the one named, or the newest
// verified) and removes what dead drills left, when no other drill runs.
// A failure after the claim gives it up.
func (a *Activities) DrillPrepare(ctx context.Context, in workflows.DrillInput) (_ workflows.DrillPlan, err error) {
	plan := workflows.DrillPlan{RTO: a.RTO, Grant: a.drillGrant(ctx)}
	if plan.DrillID, err = a.claimDrill(in); err != nil {
		return plan, err
	}
	defer func() {
		if err != nil {
			if cerr := a.drill(plan.DrillID).Clean(context.WithoutCancel(ctx)); cerr != nil {
				a.log(ctx).Warn("giving up the drill's scratch root failed", "error", cerr)
			}
			plan.DrillID = ""
		}
	}()
	if a.onlyDrill(ctx) {
		removed, err := restore.CleanDrills(ctx, a.Root, a.DB, plan.DrillID)
		if err != nil {
			return plan, classify(err)
		}
		fetched, err := a.cleanDrillFetches(plan.DrillID)
		if err != nil {
			return plan, classify(err)
		}
		removed = append(removed, fetched...)
		plan.Removed = removed
		for _, r := range removed {
			a.log(ctx).Warn("removed what a dead drill left", "what", r)
		}
	}
	if remote, err := a.drillFromRemote(ctx, in); err != nil {
		return plan, err
	} else if remote {
		return a.prepareRemoteDrill(ctx, plan, in.Archive)
	}
	name := in.Archive
	if name == "" {
		infos, _, err := a.Backups.List()
		if err != nil {
			return plan, classify(err)
		}
		for _, i := range infos {
			if i.Verified {
				name = i.ID
				break
			}
		}
		if name == "" {
			return plan, badInput("no verified backup to drill in %s", a.Backups.Path)
		}
	}
	rp, _, err := a.readPlan(name) // the checks a restore makes of the backup it is given
	if err != nil {
		return plan, err
	}
	plan.Archive, plan.Manifest, plan.BackupID = rp.Archive, rp.Manifest, rp.BackupID
	return plan, nil
}

// drillGrant is what a drill's failed steps do, as AcquireLock's grant is
// for backups and restores.
func (a *Activities) drillGrant(ctx context.Context) workflows.Grant {
	g := a.Failure
	g.OnFailure = a.DrillOnFailure
	if g.OnFailure == "" {
		g.OnFailure = workflows.OnFailureRollback
	}
	g.Host, _ = os.Hostname()
	g.SearchAttributes = a.searchAttributesReady(ctx)
	return g
}

// claimDrill returns the id of the scratch root claimed for the drill: the
// one asked for, or the first free second after it.
func (a *Activities) claimDrill(in workflows.DrillInput) (string, error) {
	t, err := manifest.ParseID(in.DrillID)
	if err != nil || in.Owner == "" {
		return "", badInput("drill id %q (owner %q): want YYYYMMDD_HHMMSS and the drill's run", in.DrillID, in.Owner)
	}
	for i := range maxRestoreIDTries {
		id := workflows.RestoreIDFor(t.Add(time.Duration(i) * time.Second))
		ok, err := a.drill(id).Claim(in.Owner)
		if err != nil {
			return "", classify(fmt.Errorf("claim a drill scratch root: %w", err))
		}
		if ok {
			return id, nil
		}
	}
	return "", badInput("every drill id of the hour from %s is taken: remove the .vulcan-drill-* directories no drill needs", in.DrillID)
}

// onlyDrill reports whether no other drill workflow runs, so leftovers
// belong to dead ones. Without Temporal it assumes so.
func (a *Activities) onlyDrill(ctx context.Context) bool {
	if a.Temporal == nil {
		return true
	}
	resp, err := a.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: a.Namespace,
		Query: `WorkflowType = "` + workflows.RestoreDrillWorkflowName + `" AND ExecutionStatus = "Running"`})
	return err == nil && len(resp.GetExecutions()) <= 1
}

// DrillRestore extracts the backup into the drill's scratch root, checking
// every entry against the manifest, and loads its dump into the scratch
// database, timing each phase.
func (a *Activities) DrillRestore(ctx context.Context, plan workflows.DrillPlan) (out workflows.DrillRestored, err error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	out = workflows.DrillRestored{Phases: map[string]float64{}}
	if plan.Source == workflows.SourceRemote {
		start := time.Now()
		if fetched, err := a.fetchForDrill(ctx, hb, plan); err != nil {
			return out, err
		} else if fetched {
			out.Phases["download"] = time.Since(start).Seconds()
		}
	}
	m, err := a.manifests.Read(plan.Manifest)
	if err != nil {
		return out, classify(err)
	}
	d := a.drill(plan.DrillID)
	p := a.drillProgress(ctx, hb)
	defer func() { out.PausedS = p.Paused().Seconds() }()
	start, paused := time.Now(), p.Paused()
	if err := checkArchiveSize(plan.Archive, m); err != nil {
		return out, classify(err)
	}
	p.point = faultpoint.DrillExtracting
	rep, err := d.Extract(ctx, p, plan.Archive, m)
	p.point = ""
	if err != nil {
		return out, classify(fmt.Errorf("validate and extract: %w", err))
	}
	out.Phases["validate and extract"] = (time.Since(start) - (p.Paused() - paused)).Seconds()
	out.Files, out.Bytes = rep.Files, rep.Bytes
	start, paused = time.Now(), p.Paused()
	if out.Loaded, err = d.Load(ctx, p, plan.Archive, m); err != nil {
		return out, classify(fmt.Errorf("load: %w", err))
	}
	if out.Loaded {
		out.Phases["load"] = (time.Since(start) - (p.Paused() - paused)).Seconds()
	}
	return out, nil
}

// DrillVerify reads every restored file and counts every table against the
// manifest, then runs the operator's check (VULCAN_DRILL_CHECK) with the
// scratch root and database in its environment.
func (a *Activities) DrillVerify(ctx context.Context, in workflows.DrillVerifyInput) (workflows.DrillVerified, error) {
	hb := startHeartbeat(ctx)
	defer hb.end()
	out := workflows.DrillVerified{Phases: map[string]float64{}}
	m, err := a.manifests.Read(in.Plan.Manifest)
	if err != nil {
		return out, classify(err)
	}
	d := a.drill(in.Plan.DrillID)
	p := a.drillProgress(ctx, hb)
	start := time.Now()
	_, out.Problems, err = d.Verify(ctx, p, m, in.Loaded)
	out.PausedS = p.Paused().Seconds()
	if err != nil {
		return out, classify(err)
	}
	out.Phases["verify"] = (time.Since(start) - p.Paused()).Seconds()
	if a.DrillCheck == "" {
		return out, nil
	}
	start = time.Now()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", a.DrillCheck) // #nosec G204 -- the operator's own command (VULCAN_DRILL_CHECK)
	cmd.Dir = d.Dir()
	cmd.Env = append(os.Environ(), "VULCAN_DRILL_ROOT="+d.Dir(), "VULCAN_DRILL_BACKUP_ID="+in.Plan.BackupID)
	if in.Loaded {
		cmd.Env = append(cmd.Env, "VULCAN_DRILL_DATABASE_URL="+a.DB.DrillURL(in.Plan.DrillID))
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	out.Phases["check"] = time.Since(start).Seconds()
	out.CheckOutput = tail(buf.String(), 4096)
	if err != nil {
		out.CheckFailed = fmt.Sprintf("%q: %v", a.DrillCheck, err)
	}
	return out, nil
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// DrillClean removes the drill's scratch root and database.
func (a *Activities) DrillClean(ctx context.Context, plan workflows.DrillPlan) error {
	hb := startHeartbeat(ctx)
	defer hb.end()
	if !manifest.ValidID(plan.DrillID) {
		return nil
	}
	if err := os.RemoveAll(a.drillFetchDir(plan.DrillID).Path); err != nil {
		return classify(fmt.Errorf("remove the drill's download: %w", err))
	}
	return classify(a.drill(plan.DrillID).Clean(ctx))
}

// DrillReport writes the drill's report as backups/drills/<id>.json.
func (a *Activities) DrillReport(ctx context.Context, rep workflows.DrillReport) error {
	if !manifest.ValidID(rep.DrillID) {
		return badInput("drill id %q", rep.DrillID)
	}
	dir := filepath.Join(a.Backups.Path, "drills")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return classify(err)
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, rep.DrillID+".json"), append(data, '\n'), 0o600); err != nil {
		return classify(err)
	}
	// Reports are evidence for a year; losing the prune costs nothing now.
	if removed, err := a.Backups.PruneDrills(time.Now(), store.DrillRetention); err != nil {
		a.log(ctx).Warn("old drill reports not removed", "error", err)
	} else if len(removed) > 0 {
		a.log(ctx).Info("drill reports older than a year removed", "files", removed)
	}
	a.Metrics.DrillFinished(rep.Passed, rep.StartedAt.Add(time.Duration(rep.TotalS*float64(time.Second))), rep.Phases, rep.TotalS)
	return nil
}

// drillFromRemote says whether the drill's backup comes from the off-site
// store: when asked, or when the store holds the only copy (a backup id
// not here, or no verified backup here at all).
func (a *Activities) drillFromRemote(ctx context.Context, in workflows.DrillInput) (bool, error) {
	if in.FromRemote {
		if a.Offsite == nil {
			return false, badInput("drill --from-remote: this worker has no off-site store (VULCAN_OFFSITE_URL is not set)")
		}
		return true, nil
	}
	if a.Offsite == nil {
		return false, nil
	}
	if in.Archive != "" {
		if !manifest.ValidID(in.Archive) {
			return false, nil
		}
		ok, err := fsutil.Exists(a.Backups.ManifestPath(in.Archive))
		return !ok, classify(err)
	}
	infos, _, err := a.Backups.List()
	if err != nil {
		return false, classify(err)
	}
	for _, i := range infos {
		if i.Verified {
			return false, nil
		}
	}
	return true, nil
}

// prepareRemoteDrill picks the off-site backup to drill (the one named, or
// the newest there), reads its index and manifest, and makes the checks a
// restore makes of a manifest; the download is the restore step's.
func (a *Activities) prepareRemoteDrill(ctx context.Context, plan workflows.DrillPlan, name string) (workflows.DrillPlan, error) {
	if err := a.Offsite.NeedIdentities(); err != nil {
		return plan, badInput("drill from the off-site store: %v", err)
	}
	b, err := a.Offsite.Open(ctx)
	if err != nil {
		return plan, offsiteError(err)
	}
	if name == "" {
		remotes, err := offsite.List(ctx, b)
		if err != nil {
			return plan, offsiteError(err)
		}
		if len(remotes) == 0 {
			return plan, badInput("no backup in the off-site store %s to drill", a.Offsite.Location)
		}
		name = remotes[len(remotes)-1].ID
	}
	if !manifest.ValidID(name) {
		return plan, badInput("drill from the off-site store: %q is not a backup id (YYYYMMDD_HHMMSS)", name)
	}
	_, m, _, err := a.Offsite.Reader(b, nil).Open(ctx, name)
	if errors.Is(err, offsite.ErrNotFound) {
		return plan, badInput("%v", err)
	} else if err != nil {
		return plan, offsiteError(err)
	}
	if err := m.CheckBackup(); err != nil {
		return plan, classify(err)
	}
	if err := a.checkManifestPaths(m); err != nil {
		return plan, err
	}
	dir := a.drillFetchDir(plan.DrillID)
	plan.Archive, plan.Manifest, plan.BackupID, plan.Source = dir.ArchivePath(m.ID), dir.ManifestPath(m.ID), m.ID, workflows.SourceRemote
	return plan, nil
}

// drillFetchDir is where a drill downloads its backup: the backup
// directory's offsite/drill-<id>/, outside the scratch root the extraction
// empties and checks.
func (a *Activities) drillFetchDir(drillID string) store.Dir {
	return store.Dir{Path: filepath.Join(a.Backups.OffsitePath(), "drill-"+drillID)}
}

// fetchForDrill downloads the drill's backup; false where an earlier
// attempt did (its manifest, written last, is there).
func (a *Activities) fetchForDrill(ctx context.Context, hb *heartbeat, plan workflows.DrillPlan) (bool, error) {
	if ok, err := fsutil.Exists(plan.Manifest); err != nil || ok {
		return false, classify(err)
	}
	if a.Offsite == nil {
		return false, badInput("drill of backup %s from the off-site store: this worker has no off-site store", plan.BackupID)
	}
	b, err := a.Offsite.Open(ctx)
	if err != nil {
		return false, offsiteError(err)
	}
	r := a.Offsite.Reader(b, func(done, objects int, bytes int64) {
		hb.set(struct {
			Phase   string `json:"phase"`
			Done    int    `json:"objects_done"`
			Objects int    `json:"objects"`
			Bytes   int64  `json:"bytes"`
		}{"download", done, objects, bytes})
	})
	if _, err := r.Fetch(ctx, store.Dir{Path: filepath.Dir(plan.Manifest)}, plan.BackupID); err != nil {
		return false, offsiteError(err)
	}
	return true, nil
}

// cleanDrillFetches removes the downloads of drills other than keep: what
// a dead drill left.
func (a *Activities) cleanDrillFetches(keep string) ([]string, error) {
	entries, err := os.ReadDir(a.Backups.OffsitePath())
	if isNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), "drill-")
		if !ok || !e.IsDir() || id == keep || !manifest.ValidID(id) {
			continue
		}
		p := filepath.Join(a.Backups.OffsitePath(), e.Name())
		if err := os.RemoveAll(p); err != nil {
			return removed, err
		}
		removed = append(removed, p)
	}
	return removed, nil
}
