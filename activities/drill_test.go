package activities

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"

	"github.com/project-vulcan/vulcan-backup/workflows"
)

// runningDrills answers the only question the drill steps ask the server:
// how many drills run.
type runningDrills struct {
	client.Client
	n int
}

// noSearchAttributes is an operator service whose namespace lists none.
type noSearchAttributes struct {
	operatorservice.OperatorServiceClient
}

func (noSearchAttributes) ListSearchAttributes(context.Context, *operatorservice.ListSearchAttributesRequest, ...grpc.CallOption) (*operatorservice.ListSearchAttributesResponse, error) {
	return &operatorservice.ListSearchAttributesResponse{}, nil
}

func (runningDrills) OperatorService() operatorservice.OperatorServiceClient {
	return noSearchAttributes{}
}

func (r runningDrills) ListWorkflow(context.Context, *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	return &workflowservice.ListWorkflowExecutionsResponse{Executions: make([]*workflowpb.WorkflowExecutionInfo, r.n)}, nil
}

// Two drills started in the same second (no lock keeps drills apart) each
// claim a scratch root of their own, and restore into it without touching
// the other's; a retried prepare finds its own claim; a prepare that fails
// gives its claim up.
func TestDrillsStartedInTheSameSecondClaimTheirOwnScratchRoots(t *testing.T) {
	a := newActivities(t, "")
	backup(t, a, workflows.KindManual, time.Date(2025, 1, 7, 2, 0, 0, 0, time.UTC))
	a.Temporal = runningDrills{n: 2}
	ctx := context.Background()
	const asked = "20250108_030000"
	first, err := a.DrillPrepare(ctx, workflows.DrillInput{DrillID: asked, Owner: "run-a"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := a.DrillPrepare(ctx, workflows.DrillInput{DrillID: asked, Owner: "run-b"})
	if err != nil {
		t.Fatal(err)
	}
	if first.DrillID != asked || second.DrillID != "20250108_030001" {
		t.Fatalf("drill ids %q and %q; want %s and the second after", first.DrillID, second.DrillID, asked)
	}
	if again, err := a.DrillPrepare(ctx, workflows.DrillInput{DrillID: asked, Owner: "run-a"}); err != nil || again.DrillID != first.DrillID {
		t.Fatalf("retried prepare: %q, %v; want its own %s", again.DrillID, err, first.DrillID)
	}
	for _, p := range []workflows.DrillPlan{first, second} {
		out, err := a.DrillRestore(ctx, p)
		if err != nil || out.Files == 0 {
			t.Fatalf("drill %s: %+v, %v", p.DrillID, out, err)
		}
	}
	for _, p := range []workflows.DrillPlan{first, second} {
		if _, err := os.Stat(filepath.Join(a.drill(p.DrillID).Dir(), "storage/logs/a.log")); err != nil {
			t.Fatalf("drill %s lost its copy: %v", p.DrillID, err)
		}
	}
	if _, err := a.DrillPrepare(ctx, workflows.DrillInput{DrillID: asked, Owner: "run-c", Archive: "no-such-backup"}); err == nil {
		t.Fatal("a drill of a backup that does not exist was prepared")
	}
	if _, err := os.Stat(a.drill("20250108_030002").Dir()); !os.IsNotExist(err) {
		t.Fatalf("the failed prepare kept its claim: %v", err)
	}
}

// A drill gives way to a backup or a restore: while one holds the
// operation lock the drill's extraction waits, heartbeating, and goes on
// once the lock is released; the wait is reported apart from the phases.
func TestDrillGivesWayToAnOperation(t *testing.T) {
	a := newActivities(t, "")
	for i := range 40 {
		os.WriteFile(filepath.Join(a.Root, "storage/logs", fmt.Sprintf("f-%02d.log", i)), []byte(strings.Repeat("line\n", 100*i)), 0o644)
	}
	backup(t, a, workflows.KindManual, time.Date(2025, 1, 7, 2, 0, 0, 0, time.UTC))
	ctx := context.Background()
	plan, err := a.DrillPrepare(ctx, workflows.DrillInput{DrillID: "20250108_030000", Owner: "run-a"})
	if err != nil {
		t.Fatal(err)
	}
	op := workflows.LockRequest{Operation: "backup", WorkflowID: "the-nightly-backup"}
	if _, err := a.AcquireLock(ctx, op); err != nil {
		t.Fatal(err)
	}
	type result struct {
		out workflows.DrillRestored
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := a.DrillRestore(ctx, plan)
		done <- result{out, err}
	}()
	const held = 1500 * time.Millisecond
	select {
	case r := <-done:
		t.Fatalf("the drill ran on while a backup held the lock: %+v, %v", r.out, r.err)
	case <-time.After(held):
	}
	if err := a.ReleaseLock(ctx, op); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the drill did not go on once the lock was released")
	}
	if r.err != nil || r.out.Files < 40 {
		t.Fatalf("drill after the pause: %+v, %v", r.out, r.err)
	}
	if paused := time.Duration(r.out.PausedS * float64(time.Second)); paused < held-yieldCheckEvery || r.out.Phases["validate and extract"] >= r.out.PausedS {
		t.Fatalf("paused %.2f s, phases %v: want the %v the lock was held, apart from the phases", r.out.PausedS, r.out.Phases, held)
	}
}
