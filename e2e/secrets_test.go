package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/proto"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

// The database password never appears in the worker's log, the starter's
// output, the backup directory or any workflow history.
func TestPasswordStaysSecret(t *testing.T) {
	dbURL := testutil.NewDatabase(t)
	const password = "vulcan-test-secret" // the test role's, in dbURL
	if !strings.Contains(dbURL, password) {
		t.Fatalf("test URL does not carry the password: %s", dbURL)
	}
	testutil.LoadVulcanDB(t, dbURL, 100)
	s := newSystem(t, "DATABASE_URL="+dbURL)
	makeStorage(t, s.root, 1)
	s.start()
	b := s.backup()
	out, errOut, _ := s.starter("restore", b.Result.Archive, "--yes", "--json")
	out2, errOut2, _ := s.starter("info", b.Result.ID)
	for what, text := range map[string]string{"worker log": s.logs.String(), "starter output": out + errOut + out2 + errOut2} {
		if strings.Contains(text, password) {
			t.Errorf("the password appears in the %s", what)
		}
	}
	filepath.Walk(filepath.Join(s.root, "backups"), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && !strings.HasSuffix(p, ".tar.gz") {
			if data, _ := os.ReadFile(p); strings.Contains(string(data), password) {
				t.Errorf("the password appears in %s", p)
			}
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.temporalClient(t)
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{})
	if err != nil || len(resp.Executions) < 3 {
		t.Fatalf("workflows: %v (%d)", err, len(resp.GetExecutions()))
	}
	control := false // the backup id must be found, proving the search sees payloads
	for _, e := range resp.Executions {
		for _, ev := range history(ctx, t, c, e.Execution.WorkflowId, e.Execution.RunId).Events {
			// Binary protobuf: payloads (JSON) appear verbatim, not base64.
			data, _ := proto.Marshal(ev)
			if strings.Contains(string(data), b.Result.ID) {
				control = true
			}
			if strings.Contains(string(data), password) {
				t.Errorf("the password appears in the history of %s", e.Execution.WorkflowId)
				break
			}
		}
	}
	if !control {
		t.Fatal("the backup id was not found in any history: the search does not see payloads")
	}
}
