package workflows_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

// Histories recorded from real runs (VULCAN_RECORD_HISTORY=1 with the e2e
// TestWorkflowBranchHistories, every branch of every workflow, and
// TestDocumentedProcedure, with the real activities) must replay against the
// current code: a change that breaks this needs workflow.GetVersion.
func TestReplayRecordedHistories(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	if len(files) < 39 {
		t.Fatalf("recorded histories: %v", files)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			base := strings.TrimSuffix(file, ".json")
			hist, err := client.HistoryFromJSON(mustOpen(t, base+".json"), client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ids, err := os.ReadFile(base + ".execution")
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Fields(string(ids))
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(wf.BackupWorkflow, workflow.RegisterOptions{Name: wf.BackupWorkflowName})
			r.RegisterWorkflowWithOptions(wf.RestoreWorkflow, workflow.RegisterOptions{Name: wf.RestoreWorkflowName})
			r.RegisterWorkflowWithOptions(wf.RestoreCleanupWorkflow, workflow.RegisterOptions{Name: wf.RestoreCleanupWorkflowName})
			r.RegisterWorkflowWithOptions(wf.CleanupWorkflow, workflow.RegisterOptions{Name: wf.CleanupWorkflowName})
			r.RegisterWorkflowWithOptions(wf.RestoreDrillWorkflow, workflow.RegisterOptions{Name: wf.RestoreDrillWorkflowName})
			r.RegisterWorkflowWithOptions(wf.OffsiteCopyWorkflow, workflow.RegisterOptions{Name: wf.OffsiteCopyWorkflowName})
			err = r.ReplayWorkflowHistoryWithOptions(nil, hist, worker.ReplayWorkflowHistoryOptions{
				OriginalExecution: workflow.Execution{ID: f[0], RunID: f[1]},
			})
			if err != nil {
				t.Fatalf("replay %s: %v", name, err)
			}
		})
	}
}

func mustOpen(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
