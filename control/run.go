package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/project-vulcan/vulcan-backup/workflows"
)

// NewWorkflowID returns "<prefix>-<UTC stamp>-<random>", unique and sortable.
func NewWorkflowID(prefix string, now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s-%s", prefix, now.UTC().Format("20060102-150405"), hex.EncodeToString(b))
}

// StartBackup starts a BackupWorkflow of the given kind.
func StartBackup(ctx context.Context, c client.Client, taskQueue string, in workflows.BackupInput) (client.WorkflowRun, error) {
	summary := in.Kind + " backup"
	if in.Full {
		summary += ", every file read"
	}
	return start(ctx, c, taskQueue, workflows.BackupIDPrefix, workflows.BackupWorkflowName, summary, in)
}

// StartRestore starts a RestoreWorkflow.
func StartRestore(ctx context.Context, c client.Client, taskQueue string, in workflows.RestoreInput) (client.WorkflowRun, error) {
	summary := "restore of " + in.Archive
	switch {
	case in.Undo != "":
		summary = "undo of restore " + in.Undo
	case in.DryRun:
		summary = "dry run: restore of " + in.Archive
	}
	return start(ctx, c, taskQueue, workflows.RestoreIDPrefix, workflows.RestoreWorkflowName, summary, in)
}

// StartDrill starts a RestoreDrillWorkflow.
func StartDrill(ctx context.Context, c client.Client, taskQueue string, in workflows.DrillInput) (client.WorkflowRun, error) {
	summary := "restore drill of the newest verified backup"
	if in.Archive != "" {
		summary = "restore drill of " + in.Archive
	}
	return start(ctx, c, taskQueue, workflows.DrillIDPrefix, workflows.RestoreDrillWorkflowName, summary, in)
}

// StartCleanup starts a CleanupWorkflow.
func StartCleanup(ctx context.Context, c client.Client, taskQueue string, in workflows.CleanupInput) (client.WorkflowRun, error) {
	return start(ctx, c, taskQueue, workflows.CleanupIDPrefix, workflows.CleanupWorkflowName, "retention clean-up", in)
}

// start starts a workflow with a summary, the line the Web UI's list and
// its page show for it.
func start(ctx context.Context, c client.Client, taskQueue, prefix, wf, summary string, arg any) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:            NewWorkflowID(prefix, time.Now()),
		TaskQueue:     taskQueue,
		StaticSummary: summary,
	}, wf, arg)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", wf, err)
	}
	return run, nil
}

// AwaitingOperator is what Follow returns when the workflow, still running,
// waits for an operator (a rollback that did not complete).
type AwaitingOperator struct{ Progress workflows.Progress }

func (e *AwaitingOperator) Error() string { return e.Progress.Message }

// Follow waits for run to end, calling onProgress whenever the progress query
// answers something new, and decodes the result into out. It returns an
// *AwaitingOperator as soon as the workflow waits for an operator.
func Follow(ctx context.Context, c client.Client, run client.WorkflowRun, every time.Duration, onProgress func(workflows.Progress), out any) error {
	done := make(chan error, 1)
	go func() { done <- run.Get(ctx, out) }()
	var last string
	poll := func() *workflows.Progress {
		p, err := QueryProgress(ctx, c, run.GetID(), run.GetRunID())
		if err != nil {
			return nil
		}
		key := fmt.Sprintf("%d|%s|%s", p.Step, p.State, p.Message)
		if key != last && onProgress != nil {
			last = key
			onProgress(p)
		}
		return &p
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			if p := poll(); p != nil && (p.State == workflows.StateRollbackIncomplete || p.State == workflows.StateAwaiting) {
				return &AwaitingOperator{Progress: *p}
			}
		}
	}
}

// Decide answers a workflow that waits for an operator, through the Update
// workflows.DecideName; the workflow's validator refuses an action it does not
// offer now.
func Decide(ctx context.Context, c client.Client, workflowID, action string) error {
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflowID, UpdateName: workflows.DecideName,
		Args: []any{workflows.Decision{Action: action}}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", action, workflowID, err)
	}
	return h.Get(ctx, nil)
}

// ErrorTypes lists the application error types in err's chain, outermost
// first, so a caller can tell a rolled-back restore from a bad archive.
func ErrorTypes(err error) []string {
	var types []string
	for err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			types = append(types, app.Type())
			err = app.Unwrap()
			continue
		}
		break
	}
	return types
}

// Outer returns the message of the outermost application error in err's
// chain: the workflow's own sentence, which names the step and the cause,
// without the activity and type clauses of the chain around it.
func Outer(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}

// Root returns the innermost error message of a Temporal error chain, which
// is the one that says what actually went wrong.
func Root(err error) string {
	msg := err.Error()
	for e := err; e != nil; e = errors.Unwrap(e) {
		var app *temporal.ApplicationError
		if errors.As(e, &app) {
			msg = app.Message()
		}
	}
	return msg
}

// QueryProgress asks a workflow for its progress.
func QueryProgress(ctx context.Context, c client.Client, workflowID, runID string) (workflows.Progress, error) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var p workflows.Progress
	v, err := c.QueryWorkflow(qctx, workflowID, runID, workflows.ProgressQuery)
	if err != nil {
		return p, err
	}
	return p, v.Get(&p)
}

// RetryPending resets the attempts of every step of workflowID that is
// pending after a failure (what the Web UI's Reset does): each runs again at
// once, with its retry budget whole again. It returns the steps it reset.
func RetryPending(ctx context.Context, c client.Client, namespace, workflowID string) ([]string, error) {
	d, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", workflowID, err)
	}
	var reset []string
	for _, p := range d.GetPendingActivities() {
		if p.GetAttempt() < 2 && p.GetLastFailure() == nil {
			continue // running its first attempt: nothing failed
		}
		_, err := c.WorkflowService().ResetActivity(ctx, &workflowservice.ResetActivityRequest{
			Namespace: namespace, Execution: d.GetWorkflowExecutionInfo().GetExecution(),
			Activity: &workflowservice.ResetActivityRequest_Id{Id: p.GetActivityId()},
		})
		if err != nil {
			return reset, fmt.Errorf("reset %s of %s: %w", p.GetActivityType().GetName(), workflowID, err)
		}
		reset = append(reset, fmt.Sprintf("%s (after %d attempts: %s)", p.GetActivityType().GetName(), p.GetAttempt()-1, p.GetLastFailure().GetMessage()))
	}
	return reset, nil
}
