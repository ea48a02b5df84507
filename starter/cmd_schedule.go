package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/project-vulcan/vulcan-backup/control"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

func newScheduleCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Manage the nightly backup schedule (" + workflows.ScheduleID + ")",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("schedule needs a subcommand: create, describe, trigger, pause, unpause or delete")}
		},
	}
	var yes bool
	var note string
	sub := func(use, short string, fn func(ctx context.Context, c client.Client) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := g.dial(cmd.Context())
				if err != nil {
					return err
				}
				defer c.Close()
				return fn(cmd.Context(), c)
			},
		}
	}
	handle := func(ctx context.Context, c client.Client) client.ScheduleHandle {
		return c.ScheduleClient().GetHandle(ctx, workflows.ScheduleID)
	}
	create := sub("create", "Create the schedule, or update its cron to $VULCAN_SCHEDULE", func(ctx context.Context, c client.Client) error {
		what, err := control.EnsureSchedule(ctx, c, g.cfg.TaskQueue, g.cfg.Schedule)
		if err != nil {
			return fail(ExitFailed, "%v", err)
		}
		if g.json {
			return g.printJSON(map[string]string{"schedule": workflows.ScheduleID, "result": what, "cron": g.cfg.Schedule})
		}
		fmt.Fprintf(g.out, "schedule %s %s (cron %q, UTC)\n", workflows.ScheduleID, what, g.cfg.Schedule)
		return nil
	})
	describe := sub("describe", "Show the schedule, its next runs and recent actions", func(ctx context.Context, c client.Client) error {
		return describeSchedule(ctx, g, handle(ctx, c))
	})
	trigger := sub("trigger", "Start a scheduled backup now", func(ctx context.Context, c client.Client) error {
		if err := handle(ctx, c).Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
			return scheduleError("trigger", err)
		}
		return g.say(map[string]string{"schedule": workflows.ScheduleID, "result": "triggered"}, "schedule %s triggered: a backup starts now (overlap policy: skip)", workflows.ScheduleID)
	})
	pause := sub("pause", "Pause the schedule", func(ctx context.Context, c client.Client) error {
		if err := handle(ctx, c).Pause(ctx, client.SchedulePauseOptions{Note: note}); err != nil {
			return scheduleError("pause", err)
		}
		return g.say(map[string]string{"schedule": workflows.ScheduleID, "result": "paused"}, "schedule %s paused", workflows.ScheduleID)
	})
	unpause := sub("unpause", "Resume the schedule", func(ctx context.Context, c client.Client) error {
		if err := handle(ctx, c).Unpause(ctx, client.ScheduleUnpauseOptions{Note: note}); err != nil {
			return scheduleError("unpause", err)
		}
		return g.say(map[string]string{"schedule": workflows.ScheduleID, "result": "unpaused"}, "schedule %s unpaused", workflows.ScheduleID)
	})
	del := sub("delete", "Delete the schedule (the worker creates it again on its next start)", func(ctx context.Context, c client.Client) error {
		if !yes && !g.confirm("Delete the nightly backup schedule?") {
			return fail(ExitUsage, "schedule delete not confirmed (pass --yes)")
		}
		if err := handle(ctx, c).Delete(ctx); err != nil {
			return scheduleError("delete", err)
		}
		return g.say(map[string]string{"schedule": workflows.ScheduleID, "result": "deleted"}, "schedule %s deleted", workflows.ScheduleID)
	})
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	pause.Flags().StringVar(&note, "note", "paused with starter", "why")
	unpause.Flags().StringVar(&note, "note", "unpaused with starter", "why")
	cmd.AddCommand(create, describe, trigger, pause, unpause, del)
	return cmd
}

func scheduleError(what string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fail(ExitFailed, "schedule %s does not exist: start the worker or run `starter schedule create`", workflows.ScheduleID)
	}
	return fail(ExitFailed, "schedule %s: %v", what, err)
}

// say prints v as JSON with --json, the message otherwise.
func (g *globalOptions) say(v any, format string, args ...any) error {
	if g.json {
		return g.printJSON(v)
	}
	fmt.Fprintf(g.out, format+"\n", args...)
	return nil
}

// scheduleReport is what `schedule describe --json` prints.
type scheduleReport struct {
	ID          string      `json:"id"`
	Cron        string      `json:"cron"`
	TimeZone    string      `json:"timezone"`
	Paused      bool        `json:"paused"`
	Note        string      `json:"note,omitempty"`
	TaskQueue   string      `json:"task_queue"`
	Overlap     string      `json:"overlap"`
	NextRuns    []time.Time `json:"next_runs"`
	Recent      []string    `json:"recent_actions"`
	Running     []string    `json:"running"`
	ActionCount int         `json:"actions"`
	Skipped     int         `json:"skipped_overlaps"`
}

func describeSchedule(ctx context.Context, g *globalOptions, h client.ScheduleHandle) error {
	d, err := h.Describe(ctx)
	if err != nil {
		return scheduleError("describe", err)
	}
	r := scheduleReport{ID: workflows.ScheduleID, Cron: control.ScheduleCron(d), Paused: d.Schedule.State.Paused,
		Note: d.Schedule.State.Note, NextRuns: d.Info.NextActionTimes, ActionCount: d.Info.NumActions,
		Skipped: d.Info.NumActionsSkippedOverlap, Recent: []string{}, Running: []string{}}
	if d.Schedule.Spec != nil {
		r.TimeZone = d.Schedule.Spec.TimeZoneName
	}
	if a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction); ok {
		r.TaskQueue = a.TaskQueue
	}
	if d.Schedule.Policy != nil {
		r.Overlap = strings.ToLower(strings.TrimPrefix(d.Schedule.Policy.Overlap.String(), "SCHEDULE_OVERLAP_POLICY_"))
	}
	for _, a := range d.Info.RecentActions {
		id := ""
		if a.StartWorkflowResult != nil {
			id = a.StartWorkflowResult.WorkflowID
		}
		r.Recent = append(r.Recent, fmt.Sprintf("%s %s", a.ActualTime.UTC().Format(time.RFC3339), id))
	}
	for _, w := range d.Info.RunningWorkflows {
		r.Running = append(r.Running, w.WorkflowID)
	}
	if g.json {
		return g.printJSON(r)
	}
	state := "active"
	if r.Paused {
		state = "PAUSED (" + r.Note + ")"
	}
	fmt.Fprintf(g.out, "schedule %s: %s\n  cron:  %s (%s)\n  queue: %s\n  runs:  %d (skipped as overlapping: %d)\n", r.ID, state, r.Cron, r.TimeZone, r.TaskQueue, r.ActionCount, r.Skipped)
	for _, t := range r.NextRuns {
		fmt.Fprintf(g.out, "  next:  %s\n", t.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	for _, a := range r.Recent {
		fmt.Fprintf(g.out, "  ran:   %s\n", a)
	}
	for _, w := range r.Running {
		fmt.Fprintf(g.out, "  running now: %s\n", w)
	}
	return nil
}
