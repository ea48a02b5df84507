package e2e

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

// A restore whose application will not become healthy (a dependency is
// down) waits for an
// operator (VULCAN_ON_FAILURE=ask): the starter exits 6 naming the workflow,
// the Web UI's list finds it by VulcanState="awaiting-operator", `starter
// status` lists it, and once the cause is fixed `starter retry` completes it
// as the same workflow with no rollback. A second such restore is rolled
// back at once by `decide rollback` through the Update API, and a decision
// sent when nothing waits is refused.
func TestRestoreWaitsForTheOperator(t *testing.T) {
	t.Parallel() // its own root, server, ports and database
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 100)
	s := newSystem(t, "DATABASE_URL="+dbURL, "VULCAN_HEALTH_TIMEOUT=1s")
	// The application needs something outside its data (a dependency),
	// down while this flag exists: the cause an operator fixes.
	broken := s.unhealthyWhile("dependency.down")
	s.setEnv("VULCAN_ON_FAILURE", "ask")
	s.setEnv("VULCAN_DECISION_TIMEOUT", "10m")
	makeStorage(t, s.root, 1)
	os.WriteFile(filepath.Join(s.root, "app.running"), nil, 0o644)
	s.start()
	b := s.backup()
	os.WriteFile(broken, nil, 0o644)
	c := s.temporalClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	_, errOut, code := s.starter("restore", b.Result.Archive, "--yes")
	if code != 6 || !strings.Contains(errOut, "waits for a decision") || !strings.Contains(errOut, "step 6 (start services)") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	id := regexp.MustCompile(`starter retry (\S+)`).FindStringSubmatch(errOut)
	if id == nil {
		t.Fatalf("no workflow in:\n%s", errOut)
	}
	workflowID := strings.Trim(id[1], "`")
	waitFor(t, time.Minute, "the list filter on VulcanState", func() bool {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: `VulcanState = "awaiting-operator" AND VulcanOperation = "restore"`})
		return err == nil && len(resp.GetExecutions()) == 1 && resp.GetExecutions()[0].GetExecution().GetWorkflowId() == workflowID
	})
	if out := s.mustStarter("status"); !strings.Contains(out, "AWAITING:  "+workflowID) || !strings.Contains(out, "start services") {
		t.Fatalf("status does not list the waiting restore:\n%s", out)
	}
	// The Web UI shows the current details: the error and the choices.
	v, err := c.QueryWorkflow(ctx, workflowID, "", "__temporal_workflow_metadata")
	var md sdkpb.WorkflowMetadata
	if err != nil || v.Get(&md) != nil {
		t.Fatalf("workflow metadata: %v", err)
	}
	if d := md.GetCurrentDetails(); !strings.Contains(d, "failed:") || !strings.Contains(d, `"retry"`) || !strings.Contains(d, `"rollback"`) {
		t.Fatalf("current details:\n%s", d)
	}

	// The operator brings the dependency back and retries.
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	out := s.mustStarter("retry", workflowID)
	if !strings.Contains(out, "completed") {
		t.Fatalf("retry: %s", out)
	}
	events := historyTypes(ctx, t, c, workflowID)
	if strings.Contains(events, wf.RollbackStorageActivity) || strings.Count(events, wf.StartServicesActivity) != 2 {
		t.Fatalf("want step 6 run twice and no rollback, history: %s", events)
	}
	if _, err := os.Stat(filepath.Join(s.root, "app.running")); err != nil {
		t.Error("the application is not running")
	}

	// Nothing waits now: a decision is refused.
	if _, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflowID, UpdateName: wf.DecideName,
		Args: []any{wf.Decision{Action: wf.DecisionRetry}}, WaitForStage: client.WorkflowUpdateStageCompleted}); err == nil {
		t.Error("a decision for a completed restore was accepted")
	}

	// Again, and decide rollback: rolled back at once.
	b2 := s.backup()
	os.WriteFile(broken, nil, 0o644)
	wantTree := treeDigest(t, filepath.Join(s.root, "storage"))
	_, errOut, code = s.starter("restore", b2.Result.Archive, "--yes")
	id = regexp.MustCompile(`starter retry (\S+)`).FindStringSubmatch(errOut)
	if code != 6 || id == nil {
		t.Fatalf("second restore: exit %d, stderr:\n%s", code, errOut)
	}
	workflowID = strings.Trim(id[1], "`")
	os.Remove(broken) // (else the rollback's own start fails too)
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflowID, UpdateName: wf.DecideName,
		Args: []any{wf.Decision{Action: wf.DecisionRollback}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil || h.Get(ctx, nil) != nil {
		t.Fatalf("decide rollback: %v", err)
	}
	if err := c.GetWorkflow(ctx, workflowID, "").Get(ctx, nil); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("after decide rollback: %v", err)
	}
	diffDigests(t, "storage after decide rollback", wantTree, treeDigest(t, filepath.Join(s.root, "storage")))
}

// historyTypes lists the activity types a workflow scheduled, in order.
func historyTypes(ctx context.Context, t *testing.T, c client.Client, workflowID string) string {
	t.Helper()
	var names []string
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			names = append(names, a.GetActivityType().GetName())
		}
	}
	return strings.Join(names, " ")
}

// On a terminal, an interactive `starter restore` that meets a step waiting
// for a decision asks there, with the time left, and the answer decides:
// here retry, once the cause is fixed, and the restore completes.
func TestInteractiveRestoreAsksOnTheTerminal(t *testing.T) {
	t.Parallel() // its own root, server, ports and database
	s := newSystem(t, "VULCAN_HEALTH_TIMEOUT=1s")
	down := s.unhealthyWhile("dependency.down")
	s.setEnv("VULCAN_ON_FAILURE", "ask")
	makeStorage(t, s.root, 1)
	os.WriteFile(filepath.Join(s.root, "app.running"), nil, 0o644)
	s.start()
	b := s.backup()
	os.WriteFile(down, nil, 0o644)

	cmd := exec.Command(starterBin, "restore", b.Result.Archive)
	cmd.Dir, cmd.Env = s.root, s.environ()
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out syncBuffer
	go io.Copy(&out, tty)
	waitOutput := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(out.String(), want); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q on the terminal:\n%s", want, out.String())
			}
		}
	}
	waitOutput("[y/N]")
	io.WriteString(tty, "y\n")
	waitOutput("waits for a decision until")
	if !strings.Contains(out.String(), "left)") || !strings.Contains(out.String(), "retry or rollback") {
		t.Fatalf("the question lacks the time left or the choices:\n%s", out.String())
	}
	os.Remove(down)
	io.WriteString(tty, "retry\n")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("starter restore: %v\n%s", err, out.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("the restore did not end:\n%s", out.String())
	}
	waitOutput("restored backup " + b.Result.ID) // the pty's last bytes may still be on their way
}

// With no decision by VULCAN_DECISION_TIMEOUT a waiting restore rolls back
// by itself: the storage is as it was, the application runs.
func TestUndecidedRestoreRollsBackAtTheDeadline(t *testing.T) {
	t.Parallel() // its own root, server, ports and database
	s := newSystem(t, "VULCAN_HEALTH_TIMEOUT=1s")
	down := s.unhealthyWhile("dependency.down")
	s.setEnv("VULCAN_ON_FAILURE", "ask")
	s.setEnv("VULCAN_DECISION_TIMEOUT", "5s")
	makeStorage(t, s.root, 1)
	os.WriteFile(filepath.Join(s.root, "app.running"), nil, 0o644)
	s.start()
	b := s.backup()
	os.WriteFile(filepath.Join(s.root, "storage/logs/after-backup.log"), []byte("keep me"), 0o644)
	want := treeDigest(t, filepath.Join(s.root, "storage"))
	os.WriteFile(down, nil, 0o644)
	_, errOut, code := s.starter("restore", b.Result.Archive, "--yes")
	m := regexp.MustCompile(`starter retry (\S+)`).FindStringSubmatch(errOut)
	if code != 6 || m == nil {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	os.Remove(down) // the rollback's own start must succeed
	c := s.temporalClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.GetWorkflow(ctx, strings.Trim(m[1], "`"), "").Get(ctx, nil); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("after the deadline: %v", err)
	}
	diffDigests(t, "storage after the deadline", want, treeDigest(t, filepath.Join(s.root, "storage")))
	if _, err := os.Stat(filepath.Join(s.root, "app.running")); err != nil {
		t.Error("the application is not running")
	}
}
