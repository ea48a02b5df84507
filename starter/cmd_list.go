package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/project-vulcan/vulcan-backup/internal/store"
)

func newListCommand(g *globalOptions) *cobra.Command {
	var remote bool
	cmd := &cobra.Command{
		Use:   "list [--remote]",
		Short: "List the backups in the backup directory, or in the off-site store (works without Temporal)",
		Long: `List the backups in the backup directory. With --remote, list the backups whose
off-site copy completed (VULCAN_OFFSITE_URL), and whether each is also here; no
private key is needed for that.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if remote {
				return runListRemote(cmd.Context(), g)
			}
			return runList(cmd.Context(), g)
		},
	}
	cmd.Flags().BoolVar(&remote, "remote", false, "list the off-site store instead")
	return cmd
}

func runList(_ context.Context, g *globalOptions) error {
	dir, _, err := g.backups()
	if err != nil {
		return err
	}
	infos, problems, err := dir.List()
	if err != nil {
		return fail(ExitFailed, "%v", err)
	}
	drilled := lastDrills(dir)
	if g.json {
		if infos == nil {
			infos = []store.Info{}
		}
		if problems == nil {
			problems = []store.Problem{}
		}
		return g.printJSON(map[string]any{"backup_dir": dir.Path, "backups": infos, "problems": problems, "last_drills": drilled})
	}
	if len(infos) == 0 {
		fmt.Fprintf(g.out, "no backups in %s\n", dir.Path)
	} else {
		tw := tabwriter.NewWriter(g.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tCREATED (UTC)\tSIZE\tFILES\tDATABASE\tVERIFIED\tWARNINGS\tLAST DRILL")
		for _, i := range infos {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", i.ID, i.Kind, i.CreatedAt.UTC().Format("2006-01-02 15:04:05"),
				humanBytes(i.Size), i.Files, yesNo(i.Database), yesNo(i.Verified), i.Warnings, drillCell(drilled[i.ID]))
		}
		tw.Flush() // #nosec G104 -- output to the terminal: nothing to do on failure
	}
	for _, p := range problems {
		fmt.Fprintf(g.errOut, "warning: %s: %s\n", p.File, p.Reason)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// lastDrills maps each drilled backup to its newest drill.
func lastDrills(dir store.Dir) map[string]store.Drill {
	out := map[string]store.Drill{}
	drills, _ := dir.Drills()
	for _, d := range drills { // newest first
		if _, seen := out[d.BackupID]; !seen {
			out[d.BackupID] = d
		}
	}
	return out
}

// drillLine says, at length, when a backup was last drilled, how that went
// and how long it took against the recovery time objective.
func drillLine(id string, d store.Drill) string {
	switch {
	case d.DrillID == "":
		return "never (starter drill " + id + " restores it into scratch space)"
	case !d.Passed:
		return fmt.Sprintf("%s, drill %s FAILED: %s", d.StartedAt.UTC().Format("2006-01-02 15:04 UTC"), d.DrillID, d.Error)
	}
	verdict := "within"
	if !d.WithinRTO {
		verdict = "OVER"
	}
	return fmt.Sprintf("%s, drill %s passed in %.0f s, %s the recovery time objective of %.0f s",
		d.StartedAt.UTC().Format("2006-01-02 15:04 UTC"), d.DrillID, d.TotalS, verdict, d.RTOS)
}

// drillCell says when a backup was last drilled and how that went.
func drillCell(d store.Drill) string {
	switch {
	case d.DrillID == "":
		return "-"
	case !d.Passed:
		return d.StartedAt.UTC().Format("2006-01-02") + " FAILED"
	case !d.WithinRTO:
		return fmt.Sprintf("%s passed, %.0f s (over RTO)", d.StartedAt.UTC().Format("2006-01-02"), d.TotalS)
	}
	return fmt.Sprintf("%s passed, %.0f s", d.StartedAt.UTC().Format("2006-01-02"), d.TotalS)
}
