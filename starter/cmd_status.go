package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/project-vulcan/vulcan-backup/control"
	"github.com/project-vulcan/vulcan-backup/internal/config"
	"github.com/project-vulcan/vulcan-backup/internal/lock"
	"github.com/project-vulcan/vulcan-backup/internal/offsite"
	"github.com/project-vulcan/vulcan-backup/internal/store"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

func newStatusCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show Temporal, the schedule, running operations and the latest backup",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd.Context(), g)
		},
	}
}

// awaiting is an operation that waits for an operator's decision.
type awaiting struct {
	WorkflowID string `json:"workflow_id"`
	Step       string `json:"step"`
	State      string `json:"state"`
	Message    string `json:"message"`
	Link       string `json:"link,omitempty"`
}

// statusReport is what `status --json` prints.
type statusReport struct {
	Temporal      string     `json:"temporal"`
	TemporalError string     `json:"temporal_error,omitempty"`
	Schedule      string     `json:"schedule,omitempty"`
	NextBackup    *time.Time `json:"next_backup,omitempty"`
	Running       []string   `json:"running"`
	// Awaiting lists the running operations that wait for an operator.
	Awaiting       []awaiting   `json:"awaiting,omitempty"`
	Lock           *lock.Holder `json:"lock,omitempty"`
	BackupDir      string       `json:"backup_dir"`
	Backups        int          `json:"backups"`
	LatestBackup   string       `json:"latest_backup,omitempty"`
	LatestCreated  *time.Time   `json:"latest_created,omitempty"`
	LatestVerified bool         `json:"latest_verified"`
	LastDrill      *store.Drill `json:"last_drill,omitempty"`
	// Offsite is the off-site store, or "off"; LastOffsite its last
	// completed copy and OffsitePending the backups still to be copied.
	Offsite        string             `json:"offsite"`
	LastOffsite    *store.OffsiteCopy `json:"last_offsite,omitempty"`
	OffsitePending []string           `json:"offsite_pending,omitempty"`
}

func runStatus(ctx context.Context, g *globalOptions) error {
	r := statusReport{Running: []string{}}
	dir, _, err := g.backups()
	if err != nil {
		return err
	}
	r.BackupDir = dir.Path
	if infos, _, err := dir.List(); err == nil {
		r.Backups = len(infos)
		if len(infos) > 0 {
			r.LatestBackup, r.LatestVerified = infos[0].ID, infos[0].Verified
			t := infos[0].CreatedAt
			r.LatestCreated = &t
		}
	}
	if drills, err := dir.Drills(); err == nil && len(drills) > 0 {
		r.LastDrill = &drills[0]
	}
	r.Offsite = "off (" + config.EnvOffsiteURL + " is not set)"
	if loc, err := offsite.ParseURL(g.cfg.OffsiteURL); g.cfg.OffsiteURL != "" && err == nil {
		r.Offsite = loc.String()
	}
	r.LastOffsite, _ = dir.LastOffsite()
	r.OffsitePending, _ = dir.OffsitePending()
	if h, err := lock.Current(dir.Path); err == nil && h != nil {
		r.Lock = h
	}
	c, derr := g.dial(ctx)
	if derr != nil {
		r.Temporal, r.TemporalError = "unreachable", derr.Error()
	} else {
		defer c.Close()
		r.Temporal = "ok " + g.cfg.TemporalAddress
		statusTemporal(ctx, g, c, &r)
	}
	if g.json {
		if err := g.printJSON(r); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.out, "temporal:  %s\n", r.Temporal)
		if r.Schedule != "" {
			fmt.Fprintf(g.out, "schedule:  %s\n", r.Schedule)
		}
		if r.NextBackup != nil {
			fmt.Fprintf(g.out, "next:      %s\n", r.NextBackup.UTC().Format("2006-01-02 15:04:05 UTC"))
		}
		for _, w := range r.Running {
			fmt.Fprintf(g.out, "running:   %s\n", w)
		}
		for _, w := range r.Awaiting {
			fmt.Fprintf(g.out, "AWAITING:  %s (%s at %s): %s\n           fix the cause, then `starter retry %s` or decide in the Web UI %s\n",
				w.WorkflowID, w.State, w.Step, w.Message, w.WorkflowID, w.Link)
		}
		if r.Lock != nil {
			fmt.Fprintf(g.out, "lock:      held by %s workflow %s since %s\n", r.Lock.Operation, r.Lock.WorkflowID, r.Lock.Since.UTC().Format(time.RFC3339))
			if r.Lock.State == lock.StateIncomplete {
				fmt.Fprintf(g.out, "           ROLLBACK INCOMPLETE: backups and restores are refused; fix the cause, then `starter retry %s`\n", r.Lock.WorkflowID)
			}
		}
		fmt.Fprintf(g.out, "backups:   %d in %s\n", r.Backups, r.BackupDir)
		if r.LatestCreated != nil {
			fmt.Fprintf(g.out, "latest:    %s (%s ago, verified: %s)\n", r.LatestBackup, time.Since(*r.LatestCreated).Round(time.Minute), yesNo(r.LatestVerified))
		}
		if d := r.LastDrill; d != nil {
			verdict := "passed"
			switch {
			case !d.Passed:
				verdict = "FAILED: " + d.Error
			case !d.WithinRTO:
				verdict = "passed, over the recovery time objective"
			}
			fmt.Fprintf(g.out, "drill:     %s of backup %s, %s ago, %.0f s, %s\n", d.DrillID, d.BackupID, time.Since(d.StartedAt).Round(time.Minute), d.TotalS, verdict)
		}
		fmt.Fprintf(g.out, "off-site:  %s\n", r.Offsite)
		if c := r.LastOffsite; c != nil {
			fmt.Fprintf(g.out, "           last copy: backup %s, %s ago, %d objects (%d uploaded, %s sent, %s already there)\n", c.ID,
				time.Since(c.CopiedAt).Round(time.Minute), c.Objects, c.Uploaded, humanBytes(c.SentBytes), humanBytes(c.DedupedBytes))
		}
		if len(r.OffsitePending) > 0 {
			fmt.Fprintf(g.out, "           still to copy: %s\n", strings.Join(r.OffsitePending, ", "))
		}
	}
	if derr != nil {
		return derr
	}
	return nil
}

func statusTemporal(ctx context.Context, g *globalOptions, c client.Client, r *statusReport) {
	if d, err := c.ScheduleClient().GetHandle(ctx, workflows.ScheduleID).Describe(ctx); err == nil {
		state := "active"
		if d.Schedule.State.Paused {
			state = "paused"
		}
		r.Schedule = fmt.Sprintf("%s %s, cron %q UTC", workflows.ScheduleID, state, control.ScheduleCron(d))
		if len(d.Info.NextActionTimes) > 0 {
			t := d.Info.NextActionTimes[0]
			r.NextBackup = &t
		}
	} else {
		r.Schedule = "missing (" + err.Error() + ")"
	}
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: g.cfg.Namespace,
		Query:     `ExecutionStatus = "Running"`,
	})
	if err != nil {
		return
	}
	for _, e := range resp.GetExecutions() {
		switch e.GetType().GetName() {
		case workflows.BackupWorkflowName, workflows.RestoreWorkflowName, workflows.CleanupWorkflowName, workflows.OffsiteCopyWorkflowName:
			r.Running = append(r.Running, fmt.Sprintf("%s %s (since %s)", e.GetType().GetName(), e.GetExecution().GetWorkflowId(),
				e.GetStartTime().AsTime().UTC().Format(time.RFC3339)))
			if p, err := control.QueryProgress(ctx, c, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId()); err == nil &&
				(p.State == workflows.StateAwaiting || p.State == workflows.StateRollbackIncomplete) {
				r.Awaiting = append(r.Awaiting, awaiting{WorkflowID: e.GetExecution().GetWorkflowId(), Step: p.StepName, State: p.State,
					Message: p.Message, Link: g.webURL(e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId())})
			}
		}
	}
}
