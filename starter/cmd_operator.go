package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/project-vulcan/vulcan-backup/control"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

func newRetryCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "retry <workflow>",
		Short: "Answer retry to an operation that waits for an operator, and follow it",
		Long: `retry answers an operation that waits for an operator: a step that failed for good
(VULCAN_ON_FAILURE=ask) runs again, a backup from its start; a restore whose rollback
did not complete runs its rollback again from where it stopped. Fix the cause first
(the message says what failed; starter status lists what waits). retry then follows
the operation to its end, with the exit status of the operation.`,
		Args: exactArgs(1, "retry needs the workflow id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDecide(cmd.Context(), g, args[0], workflows.DecisionRetry)
		},
	}
}

// runDecide sends a decision to workflowID and follows the workflow.
func runDecide(ctx context.Context, g *globalOptions, workflowID, action string) error {
	c, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := control.Decide(ctx, c, workflowID, action); err != nil {
		// Nothing waits for a decision: a retry resets the attempts of a
		// step that is pending after failures, if there is one.
		reset, rerr := []string(nil), error(nil)
		if action == workflows.DecisionRetry {
			reset, rerr = control.RetryPending(ctx, c, g.cfg.Namespace, workflowID)
		}
		if len(reset) == 0 {
			return fail(ExitFailed, "%v", errors.Join(err, rerr))
		}
		if !g.json {
			fmt.Fprintf(g.errOut, "retrying now in workflow %s: %s\n", workflowID, strings.Join(reset, "; "))
		}
	} else if !g.json {
		fmt.Fprintf(g.errOut, "%s sent to workflow %s\n", action, workflowID)
	}
	run := c.GetWorkflow(ctx, workflowID, "")
	var out any
	if err := g.follow(ctx, c, run, &out); err != nil {
		return g.workflowError("the operation", run, err)
	}
	if !g.json {
		fmt.Fprintf(g.out, "workflow %s completed\n", workflowID)
	}
	return nil
}

type cancelOptions struct{ yes bool }

func newCancelCommand(g *globalOptions) *cobra.Command {
	var opts cancelOptions
	cmd := &cobra.Command{
		Use:   "cancel <workflow>",
		Short: "Cancel a running backup or restore (a restore is rolled back)",
		Args:  exactArgs(1, "cancel needs the workflow id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCancel(cmd.Context(), g, opts, args[0])
		},
	}
	cmd.Flags().BoolVarP(&opts.yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func runCancel(ctx context.Context, g *globalOptions, opts cancelOptions, workflowID string) error {
	if !opts.yes && !g.confirm(fmt.Sprintf("Cancel %s? A cancelled restore is rolled back.", workflowID)) {
		return fail(ExitUsage, "cancel not confirmed: nothing was changed (pass --yes to skip the question)")
	}
	c, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.CancelWorkflow(ctx, workflowID, ""); err != nil {
		return fail(ExitFailed, "cancel %s: %v", workflowID, err)
	}
	run := c.GetWorkflow(ctx, workflowID, "")
	if err := g.follow(ctx, c, run, nil); err != nil {
		return g.workflowError("the operation", run, err)
	}
	return nil
}

// interrupted is what a Ctrl-C while following an operation does: it asks
// whether to cancel the operation (a restore is then rolled back, and
// followed to the end) or only to stop following it.
func (g *globalOptions) interrupted(what string, c client.Client, run client.WorkflowRun, out any) error {
	fmt.Fprintln(g.errOut)
	if !g.confirm(fmt.Sprintf("Interrupted. Cancel the %s (a cancelled restore is rolled back)? No leaves it running.", what)) {
		return fail(ExitFailed, "stopped following; the %s keeps running: workflow %s (`starter cancel %s` cancels it)",
			what, run.GetID(), run.GetID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 24*time.Hour)
	defer cancel()
	if err := c.CancelWorkflow(ctx, run.GetID(), run.GetRunID()); err != nil {
		return fail(ExitFailed, "cancel %s: %v", run.GetID(), err)
	}
	fmt.Fprintf(g.errOut, "cancelling the %s...\n", what)
	if err := g.follow(ctx, c, run, out); err != nil {
		return g.workflowError(what, run, err)
	}
	fmt.Fprintf(g.errOut, "the %s completed before the cancellation reached it\n", what)
	return nil
}
