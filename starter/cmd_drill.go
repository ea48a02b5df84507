package main

import (
	"context"
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/project-vulcan/vulcan-backup/control"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

func newDrillCommand(g *globalOptions) *cobra.Command {
	var detach, fromRemote bool
	cmd := &cobra.Command{
		Use:   "drill [<archive>] [--from-remote]",
		Short: "Restore a backup into scratch space to prove it restores, and time it",
		Long: `drill restores the newest verified backup (or the one named) into a scratch root beside
the real one (.vulcan-drill-<id>/) and a scratch database (<db>_drill_<id>), through the same
checked extraction and load a restore uses; verifies every file and row count; runs
VULCAN_DRILL_CHECK; times each phase against VULCAN_RTO; writes backups/drills/<id>.json;
and removes the scratch copies. It stops no service and touches no live data.

--from-remote drills the backup's off-site copy instead (the newest there, or the id
named): it is downloaded for the drill, the download timed as a phase, and removed with
the scratch copies. A backup id that is only in the off-site store, or no verified
backup here at all, drills from there without the flag.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := workflows.DrillInput{FromRemote: fromRemote}
			if len(args) == 1 {
				in.Archive = args[0]
			}
			return runDrill(cmd.Context(), g, in, detach)
		},
	}
	cmd.Flags().BoolVar(&detach, "detach", false, "return once the workflow has started")
	cmd.Flags().BoolVar(&fromRemote, "from-remote", false, "drill the backup's copy in the off-site store")
	return cmd
}

func runDrill(ctx context.Context, g *globalOptions, in workflows.DrillInput, detach bool) error {
	var rep workflows.DrillReport
	run, human, err := g.runWorkflow(ctx, "drill", detach, func(ctx context.Context, c client.Client) (client.WorkflowRun, error) {
		return control.StartDrill(ctx, c, g.cfg.TaskQueue, in)
	}, &rep)
	if err != nil || run == nil || detach || !human {
		return err
	}
	fmt.Fprintf(g.out, "drill %s of backup %s (%s) passed in %.1f s (objective %.0f s)\n", rep.DrillID, rep.BackupID, rep.Source, rep.TotalS, rep.RTOS)
	names := make([]string, 0, len(rep.Phases))
	for k := range rep.Phases {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(g.out, "  %-22s %.1f s\n", k+":", rep.Phases[k])
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(g.out, "  warning: %s\n", w)
	}
	return nil
}
