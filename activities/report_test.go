package activities

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/project-vulcan/vulcan-backup/internal/metrics"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// A report retried because one webhook failed does not post again to the
// ones that took it; every post of one event carries the same
// Idempotency-Key.
func TestRetriedReportDoesNotPostTwice(t *testing.T) {
	var mu sync.Mutex
	posts := map[string][]string{} // receiver -> keys
	receiver := func(name string, failFirst bool) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			posts[name] = append(posts[name], r.Header.Get("Idempotency-Key"))
			if failFirst && len(posts[name]) == 1 {
				w.WriteHeader(http.StatusBadGateway)
			}
		}))
	}
	ok, flaky := receiver("ok", false), receiver("flaky", true)
	defer ok.Close()
	defer flaky.Close()
	a := &Activities{NotifyURLs: []string{ok.URL + "/hook?key=secret", flaky.URL + "/hook"}}

	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivityWithOptions(a.ReportOutcome, activity.RegisterOptions{Name: workflows.ReportOutcomeActivity})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
		})
		o := workflows.Outcome{Operation: "backup", WorkflowID: "wf", RunID: "run", Error: "disk full", Event: "failed/4"}
		return workflow.ExecuteActivity(ctx, workflows.ReportOutcomeActivity, o).Get(ctx, nil)
	}, workflow.RegisterOptions{Name: "report"})
	env.ExecuteWorkflow("report")
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(posts["ok"]) != 1 {
		t.Errorf("the receiver that took the first post got %d posts", len(posts["ok"]))
	}
	if len(posts["flaky"]) != 2 {
		t.Errorf("the failing receiver got %d posts, want 2", len(posts["flaky"]))
	}
	keys := append(posts["ok"], posts["flaky"]...)
	for _, k := range keys {
		if k == "" || k != keys[0] {
			t.Fatalf("Idempotency-Keys %q: want one key for the event", keys)
		}
	}
}

// An incomplete rollback is counted in its own metric, beside the failure.
func TestIncompleteRollbackIsCounted(t *testing.T) {
	m := metrics.New()
	a := &Activities{Metrics: m}
	o := workflows.Outcome{Operation: "restore", Step: "start services", Error: "ROLLBACK INCOMPLETE: ...", RollbackIncomplete: true}
	if err := a.ReportOutcome(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	families, _ := m.Registry.Gather()
	for _, f := range families {
		if f.GetName() == "vulcan_restore_rollbacks_incomplete_total" && f.GetMetric()[0].GetCounter().GetValue() == 1 {
			return
		}
	}
	t.Fatal("vulcan_restore_rollbacks_incomplete_total is not 1")
}

// An operation that waits for a decision is notified as such, with the link
// and what to do, and is not counted as a failure: it has not ended.
func TestAwaitingIsNotifiedNotCounted(t *testing.T) {
	m := metrics.New()
	a := &Activities{Metrics: m, WebUI: "http://ui.example", Namespace: "default"}
	o := workflows.Outcome{Operation: "restore", Step: "start services", Error: "application not healthy", Awaiting: true,
		WorkflowID: "vulcan-restore-1", RunID: "r1"}
	msg := a.message(o)
	if msg.Status != "awaiting-operator" || !strings.Contains(msg.Text, "WAITS FOR A DECISION") ||
		!strings.Contains(msg.Text, "starter retry vulcan-restore-1") || !strings.Contains(msg.Text, "http://ui.example/") {
		t.Fatalf("message %+v", msg)
	}
	if err := a.ReportOutcome(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	families, _ := m.Registry.Gather()
	for _, f := range families {
		if f.GetName() == "vulcan_operation_failures_total" && len(f.GetMetric()) > 0 && f.GetMetric()[0].GetCounter().GetValue() > 0 {
			t.Fatal("a waiting operation was counted as failed")
		}
	}
}
