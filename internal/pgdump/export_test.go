package pgdump

import (
	"context"
	"errors"
)

// DatabaseExists reports whether database name exists on the target's server.
func (t *Target) DatabaseExists(ctx context.Context, name string) (bool, error) {
	admin, err := t.Connect(ctx, t.maintenanceDB())
	if err != nil {
		return false, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	return dbExists(ctx, admin, name)
}

// RenameForTest renames a database on the target's server, as a swap
// interrupted between its two renames leaves it.
func (t *Target) RenameForTest(ctx context.Context, from, to string) error {
	admin, err := t.Connect(ctx, t.maintenanceDB())
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	return renameDB(ctx, admin, from, to)
}

// ForceSessions sets how many sessions load a fresh database and the size
// from which a table's rows are shared between them, so that a test loads a
// small database on several sessions whatever the machine's cores; it
// returns the undo.
func ForceSessions(n int, split int64) func() {
	oldN, oldSplit := loadSessions, splitMin
	loadSessions, splitMin = n, split
	return func() { loadSessions, splitMin = oldN, oldSplit }
}

// PlannedSessions reports how many sessions would load the dump's table
// data, 0 where it would be loaded by one psql as it is.
func PlannedSessions(path string) (int, error) {
	p, err := planLoad(path)
	if err != nil {
		if errors.Is(err, errUnplanned) {
			return 0, nil
		}
		return 0, err
	}
	n := 0
	for _, s := range p.data {
		if len(s) > 0 {
			n++
		}
	}
	return n, nil
}

// ToolURL and ToolEnv are what pg_dump and psql get: the URL on their command
// line and their environment.
func (t *Target) ToolURL() string   { return t.url(t.Name) }
func (t *Target) ToolEnv() []string { return t.env() }
