package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// choice is one answer an operator may give to a failed step, and what it
// does, for the Web UI's current details and the notification.
type choice struct {
	action string
	does   string
}

// asking is what an operation needs to put a failed step to an operator.
type asking struct {
	lock      *opLock
	decisions *decisions
	prog      *Progress
	pub       *publisher
	op        Outcome
}

// asks reports whether failure goes to an operator: the worker asks
// (VULCAN_ON_FAILURE=ask) and the step was not cancelled.
func (a asking) asks(failure error) bool {
	return a.lock != nil && a.lock.grant.OnFailure == OnFailureAsk && !temporal.IsCanceledError(failure)
}

// ask waits for an operator's decision on failure: state awaiting-operator,
// the error and the choices as the workflow's current details, a
// notification, then the Update or Signal decide, or at the deadline
// (VULCAN_DECISION_TIMEOUT) the fallback, which must be among the choices.
// A cancellation while it waits answers the fallback too.
func (a asking) ask(ctx workflow.Context, failure error, fallback string, choices ...choice) string {
	// Offered first: whoever sees the state may decide at once.
	var offered []string
	for _, c := range choices {
		offered = append(offered, c.action)
	}
	a.decisions.offer(offered...)
	state, message := a.prog.State, a.prog.Message
	timeout := a.lock.grant.DecisionTimeout
	deadline := workflow.Now(ctx).Add(timeout).UTC()
	a.prog.State, a.prog.Message = StateAwaiting, rootMessage(failure)
	a.prog.Choices, a.prog.Deadline = offered, &deadline
	a.pub.publish(ctx, a.prog)
	workflow.SetCurrentDetails(ctx, details(a.prog, failure, fallback, deadline, workflow.GetInfo(ctx).WorkflowExecution.ID, choices))
	report(ctx, a.op, failure, a.prog)

	answer, err := a.decisions.waitFor(ctx, timeout, fmt.Sprintf("decision on step %d (%s); then %s", a.prog.Step, a.prog.StepName, fallback))
	if err != nil || answer == "" {
		workflow.GetLogger(ctx).Warn("no decision in time", "fallback", fallback, "error", err)
		answer = fallback
	}
	workflow.SetCurrentDetails(ctx, "")
	a.prog.State, a.prog.Message, a.prog.Choices, a.prog.Deadline = state, message, nil, nil
	a.pub.publish(ctx, a.prog)
	return answer
}

// fallbackDoes says what the fallback does, for the details.
var fallbackDoes = map[string]string{DecisionRollback: "roll back", DecisionAbort: "fail"}

// details is the Markdown the Web UI shows for an operation that waits.
func details(p *Progress, failure error, fallback string, deadline time.Time, workflowID string, choices []choice) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s waits for a decision\n\n", strings.ToUpper(p.Operation[:1])+p.Operation[1:])
	fmt.Fprintf(&b, "**Step %d/%d (%s) failed:** %s\n\n", p.Step, p.Steps, p.StepName, rootMessage(failure))
	b.WriteString("Fix the cause, then send the Update (or Signal) `decide` with one of:\n\n")
	for _, c := range choices {
		fmt.Fprintf(&b, "- `{\"action\": %q}`: %s\n", c.action, c.does)
	}
	fmt.Fprintf(&b, "\nWithout a decision by **%s** it will %s. From a terminal: `starter retry %s`.\n",
		deadline.Format("2006-01-02 15:04:05 UTC"), fallbackDoes[fallback], workflowID)
	return b.String()
}
