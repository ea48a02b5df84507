package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/store"
)

func newInfoCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "info <archive>",
		Short: "Show a backup's manifest (works without Temporal)",
		Args:  exactArgs(1, "info needs the archive to describe"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInfo(cmd.Context(), g, args[0])
		},
	}
}

func runInfo(_ context.Context, g *globalOptions, arg string) error {
	dir, root, err := g.backups()
	if err != nil {
		return err
	}
	archivePath, manifestPath, err := dir.Resolve(root, arg)
	if err != nil {
		return fail(ExitUsage, "info %s: %v", arg, err)
	}
	m, err := manifest.ReadBackup(manifestPath)
	if err != nil {
		if errors.Is(err, manifest.ErrInvalid) {
			return fail(ExitIntegrity, "info %s: %v", arg, err)
		}
		return fail(ExitUsage, "info %s: %v", arg, err)
	}
	if g.json {
		return g.printJSON(m)
	}
	i := store.InfoOf(m, archivePath, manifestPath)
	fmt.Fprintf(g.out, "backup %s\n", m.ID)
	fmt.Fprintf(g.out, "  kind:        %s\n", m.Kind)
	fmt.Fprintf(g.out, "  created:     %s\n", m.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(g.out, "  archive:     %s (%s)\n", archivePath, humanBytes(m.Archive.Size))
	fmt.Fprintf(g.out, "  sha256:      %s\n", m.Archive.SHA256)
	fmt.Fprintf(g.out, "  manifest:    %s\n", manifestPath)
	fmt.Fprintf(g.out, "  paths:       %v\n", m.Paths)
	fmt.Fprintf(g.out, "  files:       %d (%s)\n", i.Files, humanBytes(m.TotalBytes))
	if d := m.Database; d != nil {
		fmt.Fprintf(g.out, "  database:    %s (PostgreSQL %s), %s, %d tables\n", d.Name, d.ServerVersion, humanBytes(d.Size), len(d.Tables))
		fmt.Fprintf(g.out, "  dump:        %s (inside the archive at %s)\n", dir.DumpPath(m.ID), d.ArchivePath)
		for _, t := range d.Tables {
			fmt.Fprintf(g.out, "    %-40s %d rows\n", t.Table, t.Rows)
		}
	} else {
		fmt.Fprintf(g.out, "  database:    none — %s\n", m.DatabaseNote)
	}
	verified := "no"
	if !m.VerifiedAt.IsZero() {
		verified = m.VerifiedAt.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	fmt.Fprintf(g.out, "  verified:    %s\n", verified)
	fmt.Fprintf(g.out, "  drilled:     %s\n", drillLine(m.ID, lastDrills(dir)[m.ID]))
	fmt.Fprintf(g.out, "  duration:    %.1fs\n", m.DurationSec)
	fmt.Fprintf(g.out, "  tool:        %s\n", m.ToolVersion)
	if m.WorkflowID != "" {
		fmt.Fprintf(g.out, "  workflow:    %s (run %s)\n", m.WorkflowID, m.RunID)
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(g.out, "  warning:     %s: %s\n", w.Path, w.Message)
	}
	return nil
}
