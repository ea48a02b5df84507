package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/project-vulcan/vulcan-backup/control"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// cleanupOptions are the flags of `starter cleanup`.
type cleanupOptions struct {
	retentionDays int
	dryRun        bool
	yes           bool
	detach        bool
}

func newCleanupCommand(g *globalOptions) *cobra.Command {
	var opts cleanupOptions
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Delete backups older than the retention period (keeps the newest verified one)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCleanup(cmd.Context(), g, opts)
		},
	}
	cmd.Flags().IntVar(&opts.retentionDays, "retention-days", 0, "keep backups this many days (default: the worker's $VULCAN_RETENTION_DAYS, 7)")
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "list what would be deleted; delete nothing")
	cmd.Flags().BoolVarP(&opts.yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&opts.detach, "detach", false, "return once the workflow has started")
	return cmd
}

func runCleanup(ctx context.Context, g *globalOptions, opts cleanupOptions) error {
	if opts.retentionDays < 0 {
		return usageError{fmt.Errorf("--retention-days must be at least 1 (0 means the worker's default)")}
	}
	if !opts.dryRun && !opts.yes {
		if !g.confirm("Delete the backups older than the retention period?") {
			return fail(ExitUsage, "cleanup not confirmed: nothing was deleted (pass --yes, or --dry-run to see what would go)")
		}
	}
	var out workflows.RetentionOutput
	run, human, err := g.runWorkflow(ctx, "cleanup", opts.detach, func(ctx context.Context, c client.Client) (client.WorkflowRun, error) {
		return control.StartCleanup(ctx, c, g.cfg.TaskQueue, workflows.CleanupInput{Days: opts.retentionDays, DryRun: opts.dryRun})
	}, &out)
	if err != nil || run == nil || opts.detach || !human {
		return err
	}
	verb := "deleted"
	if out.DryRun {
		verb = "would delete"
	}
	if len(out.Deleted) == 0 {
		fmt.Fprintf(g.out, "retention %d days: nothing to delete; %d backups kept\n", out.Days, len(out.Kept))
		return nil
	}
	fmt.Fprintf(g.out, "retention %d days: %s %d backups (%s); %d kept\n", out.Days, verb, len(out.Deleted), strings.Join(out.Deleted, ", "), len(out.Kept))
	return nil
}
