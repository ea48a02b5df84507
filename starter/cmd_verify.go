package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/project-vulcan/vulcan-backup/activities"
	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/store"
)

func newVerifyCommand(g *globalOptions) *cobra.Command {
	var remote bool
	var sample float64
	cmd := &cobra.Command{
		Use:   "verify <archive> | verify --remote <id> [--sample P]",
		Short: "Check an archive against its manifest, here or in the off-site store (works without Temporal)",
		Long: `Read the whole archive and check it against its manifest: the archive's SHA-256 and
size, every entry's SHA-256 and size, no unsafe or unexpected entry, nothing missing;
and the standalone database dump, if present. Exit status 3 when it does not match.

--remote <id> checks the backup's off-site copy instead: its index and manifest,
and every object (or, with --sample P, a random share P of them, between 0 and 1),
downloaded, decrypted with VULCAN_OFFSITE_IDENTITY_FILE and checked against the
index. Every damaged or missing object is named. Nothing is written.`,
		Args: exactArgs(1, "verify needs the archive (or, with --remote, the backup id) to check"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("sample") && !remote {
				return usageError{fmt.Errorf("--sample goes with --remote: a local verify reads the whole archive")}
			}
			if sample <= 0 || sample > 1 {
				return usageError{fmt.Errorf("--sample %v: want a share above 0 and at most 1 (0.1 checks a tenth of the objects)", sample)}
			}
			if remote {
				return runVerifyRemote(cmd.Context(), g, args[0], sample)
			}
			return runVerify(cmd.Context(), g, args[0])
		},
	}
	cmd.Flags().BoolVar(&remote, "remote", false, "check the off-site copy of backup <id>")
	cmd.Flags().Float64Var(&sample, "sample", 1, "with --remote: the share of objects to download and check")
	return cmd
}

// verifyReport is what `verify --json` prints.
type verifyReport struct {
	Valid    bool   `json:"valid"`
	Archive  string `json:"archive"`
	Manifest string `json:"manifest,omitempty"`
	ID       string `json:"id,omitempty"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
	Database string `json:"database,omitempty"`
	Error    string `json:"error,omitempty"`
}

func runVerify(ctx context.Context, g *globalOptions, arg string) error {
	dir, root, err := g.backups()
	if err != nil {
		return err
	}
	rep := verifyReport{Archive: arg}
	code, err := verifyArchive(ctx, dir, root, arg, &rep)
	if err != nil {
		rep.Error = err.Error()
	}
	if g.json {
		if perr := g.printJSON(rep); perr != nil {
			return perr
		}
	} else if err == nil {
		fmt.Fprintf(g.out, "OK: backup %s is intact: %d files, %s, archive sha256 matches\n", rep.ID, rep.Files, humanBytes(rep.Bytes))
		if rep.Database != "" {
			fmt.Fprintf(g.out, "  database dump: %s\n", rep.Database)
		}
	}
	if err != nil {
		return fail(code, "verify %s: %v", arg, err)
	}
	return nil
}

func verifyArchive(ctx context.Context, dir store.Dir, root, arg string, rep *verifyReport) (int, error) {
	archivePath, manifestPath, err := dir.Resolve(root, arg)
	if err != nil {
		return ExitUsage, err
	}
	rep.Archive, rep.Manifest = archivePath, manifestPath
	m, err := manifest.ReadBackup(manifestPath)
	if err != nil {
		if errors.Is(err, manifest.ErrInvalid) {
			return ExitIntegrity, err
		}
		return ExitUsage, err
	}
	rep.ID = m.ID
	if err := activities.VerifyArchiveFile(ctx, archivePath, m, nil); err != nil {
		if archive.IsIntegrity(err) {
			return ExitIntegrity, err
		}
		return ExitFailed, err
	}
	rep.Bytes, rep.Files = m.TotalBytes, m.FileCount()
	if m.Database != nil {
		rep.Database = "inside the archive, sha256 matches"
		sum, _, err := archive.HashFile(dir.DumpPath(m.ID))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			rep.Database += "; standalone copy " + dir.DumpPath(m.ID) + " is missing"
		case err != nil:
			return ExitFailed, err
		case sum != m.Database.SHA256:
			return ExitIntegrity, fmt.Errorf("%w: standalone dump %s: sha256 %s, manifest says %s", archive.ErrIntegrity, dir.DumpPath(m.ID), sum, m.Database.SHA256)
		default:
			rep.Database += "; standalone copy matches too"
		}
	}
	rep.Valid = true
	return ExitOK, nil
}
