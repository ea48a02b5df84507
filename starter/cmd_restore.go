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

// restoreOptions are the flags of `starter restore`.
type restoreOptions struct {
	yes    bool
	dryRun bool
	detach bool
	undo   string
}

func newRestoreCommand(g *globalOptions) *cobra.Command {
	var opts restoreOptions
	cmd := &cobra.Command{
		Use:   "restore <archive> | restore --undo <restore-id>",
		Short: "Restore a backup in seven steps, rolled back on any failure",
		Long: `Restore a backup: validate, emergency backup, stop services, restore storage,
restore database, start services, verify. A failure or a cancellation from step 3 on
puts the previous data back and starts the services again. Ctrl-C asks whether to
cancel the restore (it is then rolled back) or only to stop following it.

<archive> is a path (relative to the root), a file name in the backup directory, or a
backup id (YYYYMMDD_HHMMSS). A backup id that is only in the off-site store
(VULCAN_OFFSITE_URL) is downloaded in step 1 into the backup directory, checked
whole against its manifest, and then restored as any other.

--undo <restore-id> undoes a verified restore within its undo window
(VULCAN_UNDO_WINDOW): the storage and database it replaced are swapped back,
through the same seven steps and with the same rollback, and the state it
restored is kept in turn for the window, so the undo can be undone.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if opts.undo != "" {
				if len(args) != 0 {
					return usageError{fmt.Errorf("restore --undo takes no archive (usage: %s)", cmd.UseLine())}
				}
				if opts.dryRun {
					return usageError{fmt.Errorf("restore --undo has no --dry-run: it checks the kept copies before it moves anything")}
				}
				return nil
			}
			return exactArgs(1, "restore needs the archive to restore")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			in := workflows.RestoreInput{Undo: opts.undo, DryRun: opts.dryRun}
			if len(args) > 0 {
				in.Archive = args[0]
			}
			return runRestore(cmd.Context(), g, opts, in)
		},
	}
	cmd.Flags().StringVar(&opts.undo, "undo", "", "undo the restore with this id (shown when it ends), within its undo window")
	cmd.Flags().BoolVarP(&opts.yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "validate the archive and print the plan; change nothing")
	cmd.Flags().BoolVar(&opts.detach, "detach", false, "return once the workflow has started")
	return cmd
}

func runRestore(ctx context.Context, g *globalOptions, opts restoreOptions, in workflows.RestoreInput) error {
	question := fmt.Sprintf("Restore %s? The current storage and database will be replaced (an emergency backup is taken first).", in.Archive)
	if in.Undo != "" {
		question = fmt.Sprintf("Undo restore %s? The storage and database it replaced are put back; the current ones are kept for the undo window (an emergency backup is taken first).", in.Undo)
	}
	if !opts.dryRun && !opts.yes {
		if !g.confirm(question) {
			return fail(ExitUsage, "restore not confirmed: nothing was changed (pass --yes to skip the question)")
		}
	}
	g.decideOnTerminal = !opts.yes && !g.json && isTerminal(g.in)
	var res workflows.RestoreResult
	run, human, err := g.runWorkflow(ctx, "restore", opts.detach, func(ctx context.Context, c client.Client) (client.WorkflowRun, error) {
		return control.StartRestore(ctx, c, g.cfg.TaskQueue, in)
	}, &res)
	if err != nil || run == nil || opts.detach {
		return err
	}
	if human {
		printRestore(g, res)
		if link := g.webURL(run.GetID(), run.GetRunID()); link != "" {
			fmt.Fprintf(g.out, "  web UI:    %s\n", link)
		}
	}
	if res.CleanupError != "" {
		return fail(ExitFailed, "restore succeeded, but removing the pre-restore copies failed: %s", res.CleanupError)
	}
	return nil
}

func printRestore(g *globalOptions, res workflows.RestoreResult) {
	p := res.Plan
	if res.DryRun {
		fmt.Fprintf(g.out, "dry run: backup %s (%s, %s) is valid; nothing was changed\n", p.BackupID, p.Kind, p.CreatedAt.Format("2006-01-02 15:04:05 UTC"))
		fmt.Fprintf(g.out, "plan:\n")
		fmt.Fprintf(g.out, "  1. validate        %s: %d files, %s, checksums match\n", p.Archive, p.Files, humanBytes(p.Bytes))
		fmt.Fprintf(g.out, "  2. emergency backup of the current state; beside it, files and database staged\n")
		fmt.Fprintf(g.out, "  3. stop services   (controller: %s)\n", p.Services)
		fmt.Fprintf(g.out, "  4. restore storage %s (staged, then swapped; %s needed, %s free)\n", strings.Join(p.Paths, ", "), humanBytes(p.NeededBytes), humanBytes(p.FreeBytes))
		if p.HasDatabase && p.Database != "" {
			fmt.Fprintf(g.out, "  5. restore database into %s (fresh database, then renamed)\n", p.Database)
		} else {
			fmt.Fprintf(g.out, "  5. restore database: skipped — %s\n", p.DatabaseNote)
		}
		fmt.Fprintf(g.out, "  6. start services\n  7. verify files, rows and services\n")
		return
	}
	if p.Kind == "undo" {
		fmt.Fprintf(g.out, "undone: restore %s (restore id of this undo: %s)\n", strings.TrimPrefix(p.BackupID, "undo-"), res.RestoreID)
	} else {
		fmt.Fprintf(g.out, "restored backup %s (%s; restore id %s)\n", p.BackupID, p.CreatedAt.Format("2006-01-02 15:04:05 UTC"), res.RestoreID)
	}
	if n := len(p.SetIDFiles); n > 0 {
		fmt.Fprintf(g.out, "  note:      %d files were backed up with a setuid or setgid bit and restored without it (first: %s)\n", n, p.SetIDFiles[0])
	}
	if res.EmergencyBackup != nil {
		fmt.Fprintf(g.out, "  emergency backup: %s (%s)\n", res.EmergencyBackup.ID, res.EmergencyBackup.Archive)
	}
	if res.Storage != nil {
		fmt.Fprintf(g.out, "  storage:   %s (%d files, %s)\n", strings.Join(res.Storage.Paths, ", "), res.Storage.Files, humanBytes(res.Storage.Bytes))
	}
	if res.Database != nil {
		line := res.Database.Mode
		if res.Database.Note != "" {
			line += " — " + res.Database.Note
		}
		fmt.Fprintf(g.out, "  database:  %s\n", line)
	}
	if len(res.Stopped) > 0 {
		fmt.Fprintf(g.out, "  services:  stopped and started %s\n", strings.Join(res.Stopped, ", "))
	}
	if res.Verify != nil {
		fmt.Fprintf(g.out, "  verified:  %d files, %d tables\n", res.Verify.Files, res.Verify.Tables)
	}
	switch {
	case res.CleanupWorkflowID == "" || res.CleanupError != "":
	case p.UndoWindow > 0:
		fmt.Fprintf(g.out, "  undo:      the replaced storage and database are kept for %s: `starter restore --undo %s` puts them back (then removed by workflow %s)\n",
			p.UndoWindow, res.RestoreID, res.CleanupWorkflowID)
	default:
		fmt.Fprintf(g.out, "  cleanup:   the pre-restore copies are being removed (workflow %s)\n", res.CleanupWorkflowID)
	}
}

// exactArgs is cobra.ExactArgs with an operator-facing message.
func exactArgs(n int, msg string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s (usage: %s)", msg, cmd.UseLine())}
		}
		return nil
	}
}
