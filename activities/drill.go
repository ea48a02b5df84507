package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/project-vulcan/vulcan-backup/internal/faultpoint"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
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
		plan.Removed = removed
		for _, r := range removed {
			a.log(ctx).Warn("removed what a dead drill left", "what", r)
		}
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
