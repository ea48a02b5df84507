package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
)

// Decision is what an operator answers to an operation that waits for one,
// through the Update or the Signal named DecideName.
type Decision struct {
	// Action is one of the choices the operation offers (DecisionRetry,
	// DecisionRollback, DecisionAbort).
	Action string `json:"action"`
}

// Operator choices.
const (
	DecisionRetry    = "retry"
	DecisionRollback = "rollback"
	DecisionAbort    = "abort"
)

// decisions takes an operator's answer, by Update or Signal, while the
// workflow waits for one; at other times the Update's validator refuses.
type decisions struct {
	offered []string
	answer  string
}

func newDecisions(ctx workflow.Context) (*decisions, error) {
	d := &decisions{}
	err := workflow.SetUpdateHandlerWithOptions(ctx, DecideName,
		func(_ workflow.Context, in Decision) (string, error) {
			d.answer = in.Action
			return "accepted: " + in.Action, nil
		},
		workflow.UpdateHandlerOptions{
			Validator:   d.validate,
			Description: `Answer an operation that waits for an operator: {"action": "retry" | "rollback" | "abort"}`,
		})
	if err != nil {
		return nil, err
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, DecideName)
		for {
			var in Decision
			ch.Receive(ctx, &in)
			if err := d.validate(in); err != nil {
				workflow.GetLogger(ctx).Warn("decision signal ignored", "error", err)
				continue
			}
			d.answer = in.Action
		}
	})
	return d, nil
}

func (d *decisions) validate(in Decision) error {
	if len(d.offered) == 0 {
		return fmt.Errorf("no decision is awaited now")
	}
	if !slices.Contains(d.offered, in.Action) {
		return fmt.Errorf("action %q is not offered now: choose %s", in.Action, strings.Join(d.offered, ", "))
	}
	return nil
}

// offer opens the choices: from now on a decision is accepted, and kept
// until wait takes it.
func (d *decisions) offer(choices ...string) {
	d.offered, d.answer = choices, ""
}

// waitFor is wait with a deadline: it returns "" when none was taken in
// time, or when ctx is cancelled.
func (d *decisions) waitFor(ctx workflow.Context, timeout time.Duration, summary string) (string, error) {
	_, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: timeout, TimerOptions: workflow.TimerOptions{Summary: summary}},
		func() bool { return d.answer != "" })
	d.offered = nil
	return d.answer, err
}

// wait blocks until one of the offered choices is taken, and closes them. ctx
// should be a disconnected context where a cancellation must not end the
// wait.
func (d *decisions) wait(ctx workflow.Context) string {
	_ = workflow.Await(ctx, func() bool { return d.answer != "" })
	d.offered = nil
	return d.answer
}
