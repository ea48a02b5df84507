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

// backupOptions are the flags of `starter backup`.
type backupOptions struct {
	detach bool
	kind   string
	full   bool
}

func newBackupCommand(g *globalOptions) *cobra.Command {
	var opts backupOptions
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Take a verified backup now (runs BackupWorkflow and waits for it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBackup(cmd.Context(), g, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.detach, "detach", false, "return once the workflow has started")
	cmd.Flags().StringVar(&opts.kind, "kind", workflows.KindManual, "backup kind recorded in the manifest: manual or emergency")
	cmd.Flags().BoolVar(&opts.full, "full", false, "read every file, copying nothing from the previous backup (otherwise done once every VULCAN_FULL_EVERY)")
	return cmd
}

func runBackup(ctx context.Context, g *globalOptions, opts backupOptions) error {
	if opts.kind != workflows.KindManual && opts.kind != workflows.KindEmergency && opts.kind != workflows.KindScheduled {
		return usageError{fmt.Errorf("--kind %q: want manual, emergency or scheduled", opts.kind)}
	}
	g.decideOnTerminal = !g.json && isTerminal(g.in)
	var res workflows.BackupResult
	run, human, err := g.runWorkflow(ctx, "backup", opts.detach, func(ctx context.Context, c client.Client) (client.WorkflowRun, error) {
		return control.StartBackup(ctx, c, g.cfg.TaskQueue, workflows.BackupInput{Kind: opts.kind, Full: opts.full})
	}, &res)
	if err != nil || run == nil || opts.detach {
		return err
	}
	if human {
		fmt.Fprintf(g.out, "backup %s (%s) written and verified\n", res.ID, res.Kind)
		fmt.Fprintf(g.out, "  archive:  %s (%s, sha256 %s)\n", res.Archive, humanBytes(res.Size), res.SHA256)
		fmt.Fprintf(g.out, "  manifest: %s\n", res.Manifest)
		fmt.Fprintf(g.out, "  files:    %d (%s)\n", res.Files, humanBytes(res.Bytes))
		if res.FullRead {
			fmt.Fprintf(g.out, "  read:     every file\n")
		} else {
			fmt.Fprintf(g.out, "  read:     what changed; %s unchanged copied from backup %s\n", humanBytes(res.ReusedBytes), res.ReusedFrom)
		}
		if res.Database {
			fmt.Fprintf(g.out, "  database: dumped\n")
		} else {
			fmt.Fprintf(g.out, "  database: none — %s\n", res.DatabaseNote)
		}
		for _, w := range res.Warnings {
			fmt.Fprintf(g.out, "  warning:  %s\n", w)
		}
		if len(res.Deleted) > 0 {
			fmt.Fprintf(g.out, "  retention deleted: %s\n", strings.Join(res.Deleted, ", "))
		}
		if link := g.webURL(run.GetID(), run.GetRunID()); link != "" {
			fmt.Fprintf(g.out, "  web UI:   %s\n", link)
		}
	}
	if res.RetentionError != "" {
		return fail(ExitFailed, "backup %s is complete, but retention failed: %s", res.ID, res.RetentionError)
	}
	return nil
}

// reportStarted prints what --detach returns.
func (g *globalOptions) reportStarted(what, id, runID string) error {
	if g.json {
		return g.printJSON(map[string]string{"workflow_id": id, "run_id": runID, "web_ui": g.webURL(id, runID)})
	}
	fmt.Fprintf(g.out, "%s started: workflow %s run %s\n", what, id, runID)
	if link := g.webURL(id, runID); link != "" {
		fmt.Fprintf(g.out, "  web UI: %s\n", link)
	}
	return nil
}
