package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/project-vulcan/vulcan-backup/activities"
	"github.com/project-vulcan/vulcan-backup/internal/config"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/offsite"
)

// openOffsite connects to the configured off-site store, the same settings
// the worker copies with (VULCAN_OFFSITE_URL and the AWS_* variables).
func (g *globalOptions) openOffsite(ctx context.Context) (*activities.Offsite, *offsite.Bucket, error) {
	o, err := activities.NewOffsite(g.cfg, "")
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("off-site store: %w", err)}
	}
	if o == nil {
		return nil, nil, usageError{fmt.Errorf("%s is not set: there is no off-site store to read", config.EnvOffsiteURL)}
	}
	b, err := o.Open(ctx)
	if err != nil {
		var cfg *offsite.ConfigError
		if errors.As(err, &cfg) {
			return nil, nil, usageError{fmt.Errorf("off-site store %s: %w", o.Location, err)}
		}
		return nil, nil, fail(ExitFailed, "off-site store %s: %v", o.Location, err)
	}
	return o, b, nil
}

// remoteBackup is a row of `list --remote`.
type remoteBackup struct {
	offsite.Remote
	Local bool `json:"local"`
}

func runListRemote(ctx context.Context, g *globalOptions) error {
	dir, _, err := g.backups()
	if err != nil {
		return err
	}
	o, b, err := g.openOffsite(ctx)
	if err != nil {
		return err
	}
	remotes, err := offsite.List(ctx, b)
	if err != nil {
		return fail(ExitFailed, "list the off-site store %s: %v", o.Location, err)
	}
	rows := []remoteBackup{}
	for i := len(remotes) - 1; i >= 0; i-- { // newest first, as list does
		local, _ := fsutil.Exists(dir.ManifestPath(remotes[i].ID))
		rows = append(rows, remoteBackup{Remote: remotes[i], Local: local})
	}
	if g.json {
		return g.printJSON(map[string]any{"location": o.Location.String(), "backups": rows})
	}
	if len(rows) == 0 {
		fmt.Fprintf(g.out, "no backups in the off-site store %s\n", o.Location)
		return nil
	}
	fmt.Fprintf(g.out, "off-site store %s:\n", o.Location)
	tw := tabwriter.NewWriter(g.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED (UTC)\tALSO LOCAL")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.ID, r.CopiedAt.UTC().Format("2006-01-02 15:04:05"), yesNo(r.Local))
	}
	tw.Flush() // #nosec G104 -- output to the terminal: nothing to do on failure
	return nil
}

func runVerifyRemote(ctx context.Context, g *globalOptions, id string, sample float64) error {
	o, b, err := g.openOffsite(ctx)
	if err != nil {
		return err
	}
	if err := o.NeedIdentities(); err != nil {
		return usageError{err}
	}
	rep, err := o.Reader(b, nil).Verify(ctx, id, sample)
	out := struct {
		offsite.VerifyReport
		Valid    bool   `json:"valid"`
		Location string `json:"location"`
		Error    string `json:"error,omitempty"`
	}{VerifyReport: rep, Valid: err == nil, Location: o.Location.String()}
	if err != nil {
		out.Error = err.Error()
	}
	if g.json {
		if perr := g.printJSON(out); perr != nil {
			return perr
		}
	} else if err == nil {
		what := "every object"
		if rep.Checked < rep.Objects {
			what = fmt.Sprintf("a sample of %d of its %d objects", rep.Checked, rep.Objects)
		}
		fmt.Fprintf(g.out, "OK: off-site copy of backup %s in %s is intact: %s (%s) downloaded, decrypted and checked\n",
			id, o.Location, what, humanBytes(rep.Bytes))
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, offsite.ErrDamaged):
		return fail(ExitIntegrity, "verify --remote %s: %v", id, err)
	case errors.Is(err, offsite.ErrNotFound):
		return fail(ExitUsage, "verify --remote %s: %v", id, err)
	}
	return fail(ExitFailed, "verify --remote %s: %v", id, err)
}
