package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/control"
	"github.com/project-vulcan/vulcan-backup/internal/testutil"
	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

// A backup that starts while a drill restores does not wait for the drill:
// it takes the lock at once and completes while the drill still runs, and
// the drill, giving way, reports the time it paused.
func TestBackupGoesAheadOfARunningDrill(t *testing.T) {
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 150000) // a load of some seconds: the drill is caught in it
	s := newSystem(t, "DATABASE_URL="+dbURL)
	makeStorage(t, s.root, 8)
	s.start()
	s.backup()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := s.temporalClient(t)
	run, err := control.StartDrill(ctx, c, "vulcan-e2e", wf.DrillInput{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the drill's restore step", func() bool {
		p, err := control.QueryProgress(ctx, c, run.GetID(), run.GetRunID())
		return err == nil && p.StepName == wf.DrillSteps[1]
	})
	b := s.backup()
	if d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID()); err != nil {
		t.Fatal(err)
	} else if st := d.GetWorkflowExecutionInfo().GetStatus().String(); st != "Running" {
		t.Fatalf("the drill ended (%s) before the backup %s did: it cannot show the backup went ahead of it", st, b.Result.ID)
	}
	var rep wf.DrillReport
	if err := run.Get(ctx, &rep); err != nil {
		t.Fatalf("the drill after giving way: %v", err)
	}
	if !rep.Passed || rep.PausedS <= 0 {
		t.Fatalf("drill report %+v: want it passed, having paused for the backup", rep)
	}
}
