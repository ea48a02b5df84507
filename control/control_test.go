package control_test

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/project-vulcan/vulcan-backup/control"
	"github.com/project-vulcan/vulcan-backup/internal/devserver"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// The embedded server's database, made before the search attributes
// existed (as any file is at first), gets them on the worker's next start;
// once there, a start adds nothing.
func TestEnsureSearchAttributesOnAnExistingDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "temporal.db")
	for i, want := range [][]string{nil, {"VulcanOperation", "VulcanBackupID", "VulcanStep", "VulcanState", "VulcanHost"}, nil} {
		func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c, stop := serve(t, ctx, db)
			defer stop() // before the next start opens the same file
			if i == 0 {
				return // the first start only makes the file, as before this change
			}
			added, err := control.EnsureSearchAttributes(ctx, c, "default")
			if err != nil || !slices.Equal(added, want) {
				t.Fatalf("start %d: added %v (%v), want %v", i, added, err, want)
			}
		}()
	}
	if len(workflows.SearchAttributes) != 5 {
		t.Fatalf("%d search attributes", len(workflows.SearchAttributes))
	}
}

// The drill schedule is created with its cron, left alone when unchanged,
// updated when the cron changes, and removed by an empty one.
func TestEnsureDrillSchedule(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, stop := serve(t, ctx, filepath.Join(t.TempDir(), "t.db"))
	defer stop()
	for _, step := range []struct{ cron, want string }{
		{"0 3 1 * *", "created"}, {"0 3 1 * *", "unchanged"}, {"0 4 1 * *", "updated"}, {"", "deleted"}, {"", "none"},
	} {
		got, err := control.EnsureDrillSchedule(ctx, c, "q", step.cron)
		if err != nil || got != step.want {
			t.Fatalf("cron %q: %q (%v), want %q", step.cron, got, err, step.want)
		}
		if step.cron != "" {
			d, err := c.ScheduleClient().GetHandle(ctx, workflows.DrillScheduleID).Describe(ctx)
			if err != nil || control.ScheduleCron(d) != step.cron {
				t.Fatalf("schedule: %v %v", control.ScheduleCron(d), err)
			}
		}
	}
}

// serve starts an embedded server on the SQLite file db and a client of
// it; stop closes both.
func serve(t *testing.T, ctx context.Context, db string) (c client.Client, stop func()) {
	t.Helper()
	port, err := devserver.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	srv, err := devserver.Start(ctx, devserver.Options{Address: addr, Namespace: "default", DBFile: db})
	if err != nil {
		t.Fatal(err)
	}
	c, err = client.Dial(client.Options{HostPort: addr})
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	return c, func() { c.Close(); srv.Stop() }
}
