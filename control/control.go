// Package control talks to the Temporal frontend on the operator's behalf:
// it makes sure the nightly schedule exists, starts backups, restores and
// cleanups, and follows them through the progress query. The worker and the
// starter share it.
package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/project-vulcan/vulcan-backup/workflows"
)

// schedule is one of the worker's schedules: what it starts.
type schedule struct {
	id, workflowID, workflow, summary, note string
	arg                                     any
}

var (
	backupSchedule = schedule{id: workflows.ScheduleID, workflowID: "vulcan-scheduled-backup", workflow: workflows.BackupWorkflowName,
		summary: "nightly backup", note: "Vulcan nightly backup", arg: workflows.BackupInput{Kind: workflows.KindScheduled}}
	drillSchedule = schedule{id: workflows.DrillScheduleID, workflowID: "vulcan-scheduled-drill", workflow: workflows.RestoreDrillWorkflowName,
		summary: "monthly restore drill", note: "Vulcan restore drill", arg: workflows.DrillInput{}}
)

// EnsureSchedule creates the nightly backup schedule, or updates its cron if
// it differs. It reports what it did: "created", "updated" or "unchanged".
func EnsureSchedule(ctx context.Context, c client.Client, taskQueue, cron string) (string, error) {
	return ensure(ctx, c, backupSchedule, taskQueue, cron)
}

// EnsureDrillSchedule does the same for the restore drill schedule; an
// empty cron removes it ("deleted", or "none").
func EnsureDrillSchedule(ctx context.Context, c client.Client, taskQueue, cron string) (string, error) {
	if cron != "" {
		return ensure(ctx, c, drillSchedule, taskQueue, cron)
	}
	err := c.ScheduleClient().GetHandle(ctx, drillSchedule.id).Delete(ctx)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return "none", nil
	case err != nil:
		return "", fmt.Errorf("delete schedule %s: %w", drillSchedule.id, err)
	}
	return "deleted", nil
}

func ensure(ctx context.Context, c client.Client, sch schedule, taskQueue, cron string) (string, error) {
	sc := c.ScheduleClient()
	_, err := sc.Create(ctx, sch.options(taskQueue, cron))
	if err == nil {
		return "created", nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return "", fmt.Errorf("create schedule %s: %w", sch.id, err)
	}
	h := sc.GetHandle(ctx, sch.id)
	desc, err := h.Describe(ctx)
	if err != nil {
		return "", fmt.Errorf("describe schedule %s: %w", sch.id, err)
	}
	if sameSchedule(desc, sch, taskQueue, cron) {
		return "unchanged", nil
	}
	err = h.Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			opts := sch.options(taskQueue, cron)
			s := in.Description.Schedule
			s.Spec = &opts.Spec
			s.Action = opts.Action
			if s.Policy == nil {
				s.Policy = &client.SchedulePolicies{}
			}
			s.Policy.Overlap = opts.Overlap
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	if err != nil {
		return "", fmt.Errorf("update schedule %s: %w", sch.id, err)
	}
	return "updated", nil
}

func (sch schedule) options(taskQueue, cron string) client.ScheduleOptions {
	return client.ScheduleOptions{
		ID:   sch.id,
		Spec: client.ScheduleSpec{CronExpressions: []string{cron}, TimeZoneName: "UTC"},
		Action: &client.ScheduleWorkflowAction{
			ID:            sch.workflowID,
			Workflow:      sch.workflow,
			Args:          []any{sch.arg},
			TaskQueue:     taskQueue,
			Memo:          map[string]any{cronMemo: cron},
			StaticSummary: sch.summary,
		},
		Overlap:       enums.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: time.Hour,
		Note:          sch.note,
	}
}

// cronMemo is the memo key, on the scheduled workflows, that records the cron
// expression the schedule was made from: the server keeps cron expressions
// only as calendars, so this is how a changed VULCAN_SCHEDULE is noticed.
const cronMemo = "vulcan_cron"

// sameSchedule compares what EnsureSchedule controls.
func sameSchedule(desc *client.ScheduleDescription, sch schedule, taskQueue, cron string) bool {
	s := desc.Schedule
	a, ok := s.Action.(*client.ScheduleWorkflowAction)
	// No execution timeout: a terminated backup skips its clean-up, and the
	// activities' own budgets bound every step.
	if !ok || a.TaskQueue != taskQueue || a.Workflow != sch.workflow || a.WorkflowExecutionTimeout != 0 {
		return false
	}
	if s.Spec == nil || s.Spec.TimeZoneName != "UTC" {
		return false
	}
	if s.Policy == nil || s.Policy.Overlap != enums.SCHEDULE_OVERLAP_POLICY_SKIP {
		return false
	}
	return memoString(a.Memo[cronMemo]) == cron
}

func memoString(v any) string {
	switch p := v.(type) {
	case string:
		return p
	case *commonpb.Payload:
		var s string
		if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err == nil {
			return s
		}
	}
	return ""
}

// ScheduleCron returns the cron expression a schedule was made from.
func ScheduleCron(desc *client.ScheduleDescription) string {
	if a, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction); ok {
		return memoString(a.Memo[cronMemo])
	}
	return ""
}

// EnsureSearchAttributes registers on namespace ns every Vulcan search
// attribute it lacks (all Keyword), and returns the names it added. It is
// for the embedded server of worker --dev; on a cluster an operator
// registers them once (see README).
func EnsureSearchAttributes(ctx context.Context, c client.Client, ns string) ([]string, error) {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return nil, fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enums.IndexedValueType{}
	var names []string
	for _, k := range workflows.SearchAttributes {
		if _, ok := have.GetCustomAttributes()[k.GetName()]; !ok {
			missing[k.GetName()] = enums.INDEXED_VALUE_TYPE_KEYWORD
			names = append(names, k.GetName())
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: ns, SearchAttributes: missing}); err != nil {
		return nil, fmt.Errorf("add search attributes %v: %w", names, err)
	}
	return names, nil
}
