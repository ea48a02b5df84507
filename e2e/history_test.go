package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
)

// recordHistories writes the history of the latest completed backup and
// restore, run with the real activities, to workflows/testdata for the replay
// tests when VULCAN_RECORD_HISTORY is set (<Workflow>-procedure.json), beside
// the branches TestWorkflowBranchHistories records.
func recordHistories(t *testing.T, s *system) {
	if os.Getenv("VULCAN_RECORD_HISTORY") == "" {
		return
	}
	const tag = "procedure"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.temporalClient(t)
	for _, name := range []string{"BackupWorkflow", "RestoreWorkflow"} {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: `WorkflowType = "` + name + `" AND ExecutionStatus = "Completed"`,
		})
		if err != nil || len(resp.Executions) == 0 {
			t.Fatalf("no completed %s: %v", name, err)
		}
		e := resp.Executions[0].Execution
		h := history(ctx, t, c, e.WorkflowId, e.RunId)
		data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join("..", "workflows", "testdata", name+"-"+tag+".json")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// The replayer needs the original execution: ids feed child workflow ids.
		if err := os.WriteFile(strings.TrimSuffix(p, ".json")+".execution", []byte(e.WorkflowId+" "+e.RunId+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s", p)
	}
}

// temporalClient dials the system's embedded server; it is closed when the
// test ends.
func (s *system) temporalClient(t *testing.T) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: s.addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// history returns every event of a workflow run.
func history(ctx context.Context, t *testing.T, c client.Client, workflowID, runID string) *historypb.History {
	t.Helper()
	h := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	return h
}
