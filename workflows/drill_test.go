package workflows_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

func stubDrillPrepare(ctx activityCtx, _ wf.DrillInput) (wf.DrillPlan, error) {
	return wf.DrillPlan{}, nil
}
func stubDrillRestore(ctx activityCtx, _ wf.DrillPlan) (wf.DrillRestored, error) {
	return wf.DrillRestored{}, nil
}
func stubDrillVerify(ctx activityCtx, _ wf.DrillVerifyInput) (wf.DrillVerified, error) {
	return wf.DrillVerified{}, nil
}
func stubDrillClean(ctx activityCtx, _ wf.DrillPlan) error    { return nil }
func stubDrillReport(ctx activityCtx, _ wf.DrillReport) error { return nil }

// drillEnv returns an environment where every drill step succeeds, with
// verified as the verify step's answer, except what the overrides
// (registered first, so they match first) change.
func drillEnv(t *testing.T, verified wf.DrillVerified, overrides ...func(*testsuite.TestWorkflowEnvironment)) (*testsuite.TestWorkflowEnvironment, *[]wf.DrillReport, *int) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(wf.RestoreDrillWorkflow, workflow.RegisterOptions{Name: wf.RestoreDrillWorkflowName})
	for name, fn := range map[string]any{
		wf.DrillPrepareActivity: stubDrillPrepare, wf.DrillRestoreActivity: stubDrillRestore, wf.DrillVerifyActivity: stubDrillVerify,
		wf.DrillCleanActivity: stubDrillClean, wf.DrillReportActivity: stubDrillReport, wf.ReportOutcomeActivity: stubReport,
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	for _, o := range overrides {
		o(env)
	}
	var reports []wf.DrillReport
	cleaned := 0
	env.OnActivity(wf.DrillPrepareActivity, mock.Anything, mock.Anything).Return(
		func(_ activityCtx, in wf.DrillInput) (wf.DrillPlan, error) {
			return wf.DrillPlan{DrillID: in.DrillID, BackupID: "20250101_020000", RTO: 30 * time.Second}, nil
		})
	env.OnActivity(wf.DrillRestoreActivity, mock.Anything, mock.Anything).Return(
		wf.DrillRestored{Files: 3, Loaded: true, Phases: map[string]float64{"validate and extract": 4, "load": 40}}, nil)
	env.OnActivity(wf.DrillVerifyActivity, mock.Anything, mock.Anything).Return(verified, nil)
	env.OnActivity(wf.DrillCleanActivity, mock.Anything, mock.Anything).Return(func(activityCtx, wf.DrillPlan) error { cleaned++; return nil })
	env.OnActivity(wf.DrillReportActivity, mock.Anything, mock.Anything).Return(func(_ activityCtx, r wf.DrillReport) error {
		reports = append(reports, r)
		return nil
	})
	env.OnActivity(wf.ReportOutcomeActivity, mock.Anything, mock.Anything).Return(nil)
	return env, &reports, &cleaned
}

// A drill that passes but exceeds the objective is a warning naming the
// slowest phase; it cleans up and writes its report.
func TestDrillOverTheObjectiveWarns(t *testing.T) {
	env, reports, cleaned := drillEnv(t, wf.DrillVerified{Phases: map[string]float64{"verify": 2}})
	env.ExecuteWorkflow(wf.RestoreDrillWorkflowName, wf.DrillInput{})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if *cleaned != 1 || len(*reports) != 1 {
		t.Fatalf("cleaned %d times, %d reports", *cleaned, len(*reports))
	}
	r := (*reports)[0]
	if !r.Passed || r.WithinRTO || r.Slowest != "load" || r.TotalS != 46 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "load") {
		t.Fatalf("report %+v", r)
	}
	env.AssertActivityCalled(t, wf.ReportOutcomeActivity, mock.Anything, mock.MatchedBy(func(o wf.Outcome) bool {
		return o.Operation == "drill" && o.Succeeded && len(o.Warnings) == 1
	}))
}

// A drill whose copy differs from the manifest, or whose operator check
// fails, fails; it still cleans up and reports.
func TestFailedDrillCleansUpAndReports(t *testing.T) {
	for name, v := range map[string]wf.DrillVerified{
		"mismatch": {Problems: []string{"1 different (storage/a)"}},
		"check":    {CheckFailed: `"smoke": exit status 3`},
	} {
		t.Run(name, func(t *testing.T) {
			env, reports, cleaned := drillEnv(t, v)
			env.ExecuteWorkflow(wf.RestoreDrillWorkflowName, wf.DrillInput{})
			if err := env.GetWorkflowError(); err == nil {
				t.Fatal("want a failed drill")
			}
			if *cleaned != 1 || len(*reports) != 1 || (*reports)[0].Passed || (*reports)[0].Error == "" {
				t.Fatalf("cleaned %d, reports %+v", *cleaned, *reports)
			}
		})
	}
}

// With VULCAN_DRILL_ON_FAILURE=ask a drill step that fails for good waits
// for a decision: retry runs it again and the drill goes on; abort, or no
// answer by the deadline, cleans up and fails the drill. By default
// (rollback) it fails at once.
func TestFailedDrillStepAsksWhenTheWorkerAsks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		grant  wf.Grant
		answer string // "" for none
		passes bool
		calls  int
	}{
		{"retry", asks, wf.DecisionRetry, true, 2},
		{"abort", asks, wf.DecisionAbort, false, 1},
		{"deadline", asks, "", false, 1},
		{"rollback", wf.Grant{OnFailure: wf.OnFailureRollback}, "", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var during wf.Progress
			env, reports, cleaned := drillEnv(t, wf.DrillVerified{}, func(env *testsuite.TestWorkflowEnvironment) {
				env.OnActivity(wf.DrillPrepareActivity, mock.Anything, mock.Anything).Return(
					func(_ activityCtx, in wf.DrillInput) (wf.DrillPlan, error) {
						return wf.DrillPlan{DrillID: in.DrillID, BackupID: "20250101_020000", RTO: time.Hour, Grant: tc.grant}, nil
					})
				env.OnActivity(wf.DrillRestoreActivity, mock.Anything, mock.Anything).Return(wf.DrillRestored{}, boom("disk full")).Times(1)
				if tc.answer != "" {
					env.RegisterDelayedCallback(func() {
						during = queryProgress(t, env)
						decide(t, env, tc.answer)
					}, time.Minute)
				}
			})
			env.ExecuteWorkflow(wf.RestoreDrillWorkflowName, wf.DrillInput{})
			if err := env.GetWorkflowError(); (err == nil) != tc.passes {
				t.Fatalf("drill error %v, want it to pass: %v", err, tc.passes)
			}
			env.AssertActivityNumberOfCalls(t, wf.DrillRestoreActivity, tc.calls)
			if tc.answer != "" && (during.State != wf.StateAwaiting || !strings.Contains(during.Message, "disk full")) {
				t.Fatalf("progress while waiting: %+v", during)
			}
			if *cleaned != 1 || len(*reports) != 1 || (*reports)[0].Passed != tc.passes {
				t.Fatalf("cleaned %d, reports %+v", *cleaned, *reports)
			}
		})
	}
}

// The drill's restore and verify steps go to the drill worker's task queue
// (the process at low priority), waiting at most DrillWorkerWait for it;
// the prepare, clean-up and report steps stay on the workflow's own.
func TestDrillRestoresOnTheDrillWorker(t *testing.T) {
	env, _, _ := drillEnv(t, wf.DrillVerified{})
	queues := map[string]string{}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		queues[info.ActivityType.Name] = info.TaskQueue
	})
	env.ExecuteWorkflow(wf.RestoreDrillWorkflowName, wf.DrillInput{})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	own := "default-test-taskqueue"
	want := map[string]string{
		wf.DrillPrepareActivity: own, wf.DrillRestoreActivity: wf.DrillTaskQueue(own), wf.DrillVerifyActivity: wf.DrillTaskQueue(own),
		wf.DrillCleanActivity: own, wf.DrillReportActivity: own,
	}
	for name, q := range want {
		if queues[name] != q {
			t.Errorf("%s ran on task queue %q, want %q", name, queues[name], q)
		}
	}
}
