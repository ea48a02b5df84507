package pgdump

import (
	"context"
	"fmt"
	"strings"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// A restore drill loads a backup's dump into a scratch database beside the
// target, <db>_drill_<id>, which nothing else uses, and drops it after.

// DrillName is the scratch database of drill id.
func (t *Target) DrillName(id string) string { return t.Name + "_drill_" + id }

// LoadDrill creates the scratch database of drill id, loads the dump into it
// and checks its row counts against want. A leftover of the same name is
// replaced.
func (t *Target) LoadDrill(ctx context.Context, dumpPath, id string, want []manifest.TableCount, progress func(int64)) error {
	admin, err := t.Connect(ctx, t.maintenanceDB())
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	name := t.DrillName(id)
	if err := t.createLike(ctx, admin, name); err != nil {
		return err
	}
	if err := t.loadFresh(ctx, name, dumpPath, progress); err != nil {
		return err
	}
	return t.checkCounts(ctx, name, want)
}

// DropDrills drops the scratch databases of every drill but keep (""
// drops all): what a drill leaves, or a dead one left. It returns their
// names.
func (t *Target) DropDrills(ctx context.Context, keep string) ([]string, error) {
	admin, err := t.Connect(ctx, t.maintenanceDB())
	if err != nil {
		return nil, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	rows, err := admin.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", t.Name+"_drill_")
	if err != nil {
		return nil, fmt.Errorf("list drill databases: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		if manifest.ValidID(strings.TrimPrefix(n, t.Name+"_drill_")) && (keep == "" || n != t.DrillName(keep)) {
			names = append(names, n)
		}
	}
	rows.Close()
	for _, n := range names {
		if err := dropDB(ctx, admin, n); err != nil {
			return nil, fmt.Errorf("drop %s: %w", n, err)
		}
	}
	return names, nil
}

// DrillURL is the connection URL of drill id's scratch database, for the
// operator's check.
func (t *Target) DrillURL(id string) string { return t.connString(t.DrillName(id)) }

// CheckDrillCounts compares the row counts of drill id's scratch database
// with want.
func (t *Target) CheckDrillCounts(ctx context.Context, id string, want []manifest.TableCount) error {
	return t.checkCounts(ctx, t.DrillName(id), want)
}

// DropDrill drops drill id's scratch database, if it exists.
func (t *Target) DropDrill(ctx context.Context, id string) error {
	admin, err := t.Connect(ctx, t.maintenanceDB())
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if err := dropDB(ctx, admin, t.DrillName(id)); err != nil {
		return fmt.Errorf("drop %s: %w", t.DrillName(id), err)
	}
	return nil
}
