package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/project-vulcan/vulcan-backup/control"
	"github.com/project-vulcan/vulcan-backup/internal/devserver"
	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

// branch is one path through a workflow: which activities fail (once, or
// always) and what the test does while it runs.
type branch struct {
	name     string
	workflow string
	input    any
	fail     map[string]int // activity -> how many calls fail (-1: all)
	block    string         // activity that runs until cancelled
	// during runs while the workflow runs, once its progress is in state
	// (and at step or later).
	state  string
	step   int
	during func(ctx context.Context, c client.Client, id string) error
	// grant is what the stand-in AcquireLock answers (the worker's
	// failure settings).
	grant wf.Grant
	// wantErr is whether the workflow ends in an error.
	wantErr bool
	// check looks at the order the stand-ins ran in, once it has ended.
	check func(t *testing.T, events []string)
	// offsite: the stand-in commit marks the backup for an off-site copy.
	offsite bool
}

// Every branch of the workflows runs on a real (embedded) Temporal server
// with stand-in activities, and its history must replay against the code.
// With VULCAN_RECORD_HISTORY set the histories are written to
// workflows/testdata as the baseline the replay test guards: record them
// after a deliberate change that is behind workflow.GetVersion.
func TestWorkflowBranchHistories(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, err := devserver.Start(ctx, devserver.Options{Address: addr, Namespace: "default", DBFile: filepath.Join(t.TempDir(), "temporal.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c, err := client.Dial(client.Options{HostPort: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := control.EnsureSearchAttributes(ctx, c, "default"); err != nil {
		t.Fatal(err)
	}

	decide := func(action string) func(context.Context, client.Client, string) error {
		return func(ctx context.Context, c client.Client, id string) error {
			h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: wf.DecideName,
				Args: []any{wf.Decision{Action: action}}, WaitForStage: client.WorkflowUpdateStageCompleted})
			if err != nil {
				return err
			}
			return h.Get(ctx, nil)
		}
	}
	cancelIt := func(ctx context.Context, c client.Client, id string) error { return c.CancelWorkflow(ctx, id, "") }
	restore := wf.RestoreInput{Archive: "20250101_000000"}
	branches := []branch{
		{name: "success", workflow: wf.RestoreWorkflowName, input: restore},
		{name: "dry-run", workflow: wf.RestoreWorkflowName, input: wf.RestoreInput{Archive: "20250101_000000", DryRun: true}},
		{name: "fail-validate", workflow: wf.RestoreWorkflowName, input: restore, fail: map[string]int{wf.ValidateAndStageActivity: -1}, wantErr: true},
		{name: "fail-emergency", workflow: wf.RestoreWorkflowName, input: restore, fail: map[string]int{wf.DumpDatabaseActivity: -1}, wantErr: true},
		{name: "fail-stage-database", workflow: wf.RestoreWorkflowName, input: restore, fail: map[string]int{wf.StageDatabaseActivity: -1}, wantErr: true},
		{name: "fail-stop", workflow: wf.RestoreWorkflowName, input: restore, fail: map[string]int{wf.StopServicesActivity: 1}, wantErr: true},
		{name: "fail-storage", workflow: wf.RestoreWorkflowName, input: restore, fail: map[string]int{wf.RestoreStorageActivity: -1}, wantErr: true},
		{name: "fail-database", workflow: wf.RestoreWorkflowName, input: restore, fail: map[string]int{wf.RestoreDatabaseActivity: -1}, wantErr: true},
		{name: "fail-start", workflow: wf.RestoreWorkflowName, input: restore, fail: map[string]int{wf.StartServicesActivity: 1}, wantErr: true},
		{name: "fail-verify", workflow: wf.RestoreWorkflowName, input: restore, fail: map[string]int{wf.VerifyRestoreActivity: 1}, wantErr: true},
		{name: "cancel-validate", workflow: wf.RestoreWorkflowName, input: restore, block: wf.ValidateAndStageActivity,
			state: wf.StateRunning, during: cancelIt, wantErr: true},
		{name: "cancel-database", workflow: wf.RestoreWorkflowName, input: restore, block: wf.RestoreDatabaseActivity,
			state: wf.StateRunning, step: 5, during: cancelIt, wantErr: true, check: undoneAfterStopped(wf.RestoreDatabaseActivity, wf.RollbackDatabaseActivity)},
		{name: "cancel-start", workflow: wf.RestoreWorkflowName, input: restore, block: wf.StartServicesActivity,
			state: wf.StateRunning, step: 6, during: cancelIt, wantErr: true, check: undoneAfterStopped(wf.StartServicesActivity, wf.StopServicesActivity)},
		{name: "rollback-incomplete-retry", workflow: wf.RestoreWorkflowName, input: restore,
			fail:  map[string]int{wf.StartServicesActivity: 1, wf.RollbackDatabaseActivity: 1},
			state: wf.StateRollbackIncomplete, during: decide(wf.DecisionRetry), wantErr: true},
		{name: "rollback-incomplete-abort", workflow: wf.RestoreWorkflowName, input: restore,
			fail:  map[string]int{wf.StartServicesActivity: 1, wf.StopServicesActivity: -1},
			state: wf.StateRollbackIncomplete, during: decide(wf.DecisionAbort), wantErr: true},
		{name: "undo", workflow: wf.RestoreWorkflowName, input: wf.RestoreInput{Undo: "20241231_000000"}},
		{name: "undo-fail-verify", workflow: wf.RestoreWorkflowName, input: wf.RestoreInput{Undo: "20241231_000000"}, fail: map[string]int{wf.VerifyRestoreActivity: 1}, wantErr: true},
		{name: "ask-retry", workflow: wf.RestoreWorkflowName, input: restore, grant: asks(time.Minute),
			fail: map[string]int{wf.StartServicesActivity: 1}, state: wf.StateAwaiting, during: decide(wf.DecisionRetry)},
		{name: "ask-timeout", workflow: wf.RestoreWorkflowName, input: restore, grant: asks(2 * time.Second),
			fail: map[string]int{wf.StartServicesActivity: 1}, wantErr: true},
		{name: "ask-retry", workflow: wf.BackupWorkflowName, input: wf.BackupInput{Kind: wf.KindManual}, grant: asks(time.Minute),
			fail: map[string]int{wf.DumpDatabaseActivity: 1}, state: wf.StateAwaiting, during: decide(wf.DecisionRetry)},
		{name: "success", workflow: wf.RestoreDrillWorkflowName, input: wf.DrillInput{}, check: drilledLow},
		{name: "fail-prepare", workflow: wf.RestoreDrillWorkflowName, input: wf.DrillInput{}, fail: map[string]int{wf.DrillPrepareActivity: -1}, wantErr: true},
		{name: "fail-restore", workflow: wf.RestoreDrillWorkflowName, input: wf.DrillInput{}, fail: map[string]int{wf.DrillRestoreActivity: -1}, wantErr: true},
		{name: "fail-verify", workflow: wf.RestoreDrillWorkflowName, input: wf.DrillInput{}, fail: map[string]int{wf.DrillVerifyActivity: -1}, wantErr: true},
		{name: "cancel-restore", workflow: wf.RestoreDrillWorkflowName, input: wf.DrillInput{}, block: wf.DrillRestoreActivity,
			state: wf.StateRunning, step: 2, during: cancelIt, wantErr: true, check: cleanedAfterStopped(wf.DrillRestoreActivity)},
		{name: "ask-retry", workflow: wf.RestoreDrillWorkflowName, input: wf.DrillInput{}, grant: asks(time.Minute),
			fail: map[string]int{wf.DrillVerifyActivity: 1}, state: wf.StateAwaiting, during: decide(wf.DecisionRetry), check: drilledLow},
		{name: "ask-abort", workflow: wf.RestoreDrillWorkflowName, input: wf.DrillInput{}, grant: asks(time.Minute),
			fail: map[string]int{wf.DrillRestoreActivity: 1}, state: wf.StateAwaiting, during: decide(wf.DecisionAbort), wantErr: true},
		{name: "success", workflow: wf.BackupWorkflowName, input: wf.BackupInput{Kind: wf.KindManual}},
		{name: "fail-dump", workflow: wf.BackupWorkflowName, input: wf.BackupInput{Kind: wf.KindManual}, fail: map[string]int{wf.DumpDatabaseActivity: -1}, wantErr: true},
		{name: "fail-start-after", workflow: wf.BackupWorkflowName, input: wf.BackupInput{Kind: wf.KindScheduled}, fail: map[string]int{wf.StartAfterBackupActivity: -1}, wantErr: true},
		{name: "offsite", workflow: wf.BackupWorkflowName, input: wf.BackupInput{Kind: wf.KindScheduled}, offsite: true,
			check: func(t *testing.T, events []string) {
				if !slices.Contains(events, wf.CopyOffsiteActivity) {
					t.Errorf("the backup started no off-site copy: %v", events)
				}
			}},
		{name: "success", workflow: wf.OffsiteCopyWorkflowName, input: wf.OffsiteInput{BackupID: "20250102_000000"}},
		{name: "fail-copy", workflow: wf.OffsiteCopyWorkflowName, input: wf.OffsiteInput{BackupID: "20250102_000000"}, fail: map[string]int{wf.CopyOffsiteActivity: -1}, wantErr: true},
		{name: "fail-collect", workflow: wf.OffsiteCopyWorkflowName, input: wf.OffsiteInput{BackupID: "20250102_000000"}, fail: map[string]int{wf.CollectOffsiteActivity: -1}, wantErr: true},
		{name: "success", workflow: wf.CleanupWorkflowName, input: wf.CleanupInput{}},
		{name: "success", workflow: wf.RestoreCleanupWorkflowName, input: wf.RestoreCleanupInput{StepInput: wf.StepInput{RestoreID: "20250102_000000"}}},
		{name: "undo-window", workflow: wf.RestoreCleanupWorkflowName, input: wf.RestoreCleanupInput{StepInput: wf.StepInput{RestoreID: "20250102_000000"}, KeepFor: 2 * time.Second}},
	}
	for _, b := range branches {
		t.Run(b.workflow+"-"+b.name, func(t *testing.T) { runBranch(t, c, b) })
	}
}

// onDrillQueue marks, in the stand-ins' events, a step run on the drill
// worker's task queue.
const onDrillQueue = " on the drill queue"

// drilledLow checks that a drill's restore and verify ran on the drill
// worker's queue and its other steps did not.
func drilledLow(t *testing.T, events []string) {
	t.Helper()
	for _, name := range []string{wf.DrillRestoreActivity, wf.DrillVerifyActivity} {
		if !slices.Contains(events, name+onDrillQueue) {
			t.Errorf("%s did not run on the drill queue: %v", name, events)
		}
	}
	for _, name := range []string{wf.DrillPrepareActivity, wf.DrillCleanActivity, wf.DrillReportActivity} {
		if slices.Contains(events, name+onDrillQueue) {
			t.Errorf("%s ran on the drill queue: %v", name, events)
		}
	}
}

// cleanedAfterStopped checks that a cancelled drill cleaned up only after
// its step had stopped writing.
func cleanedAfterStopped(step string) func(*testing.T, []string) {
	return func(t *testing.T, events []string) {
		t.Helper()
		stopped, cleaned := slices.Index(events, step+" stopped"), slices.Index(events, wf.DrillCleanActivity)
		if stopped < 0 || cleaned < stopped {
			t.Errorf("clean-up before %s stopped: %v", step, events)
		}
	}
}

func runBranch(t *testing.T, c client.Client, b branch) {
	queue := "branch-" + strings.ToLower(b.workflow) + "-" + b.name
	w := worker.New(c, queue, worker.Options{MaxHeartbeatThrottleInterval: time.Second})
	w.RegisterWorkflowWithOptions(wf.BackupWorkflow, workflow.RegisterOptions{Name: wf.BackupWorkflowName})
	w.RegisterWorkflowWithOptions(wf.RestoreWorkflow, workflow.RegisterOptions{Name: wf.RestoreWorkflowName})
	w.RegisterWorkflowWithOptions(wf.CleanupWorkflow, workflow.RegisterOptions{Name: wf.CleanupWorkflowName})
	w.RegisterWorkflowWithOptions(wf.RestoreCleanupWorkflow, workflow.RegisterOptions{Name: wf.RestoreCleanupWorkflowName})
	w.RegisterWorkflowWithOptions(wf.RestoreDrillWorkflow, workflow.RegisterOptions{Name: wf.RestoreDrillWorkflowName})
	w.RegisterWorkflowWithOptions(wf.OffsiteCopyWorkflow, workflow.RegisterOptions{Name: wf.OffsiteCopyWorkflowName})
	stand := &standIns{fail: b.fail, block: b.block, grant: b.grant, calls: map[string]int{}, offsite: b.offsite}
	stand.register(w)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// The drill worker's queue, served by the same stand-ins.
	dw := worker.New(c, wf.DrillTaskQueue(queue), worker.Options{MaxHeartbeatThrottleInterval: time.Second})
	stand.register(dw)
	if err := dw.Start(); err != nil {
		t.Fatal(err)
	}
	defer dw.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := "vulcan-branch-" + strings.ToLower(b.workflow) + "-" + b.name
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, b.workflow, b.input)
	if err != nil {
		t.Fatal(err)
	}
	if b.during != nil {
		waitForState(ctx, t, c, run, b.state, b.step)
		if err := b.during(ctx, c, id); err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
	}
	err = run.Get(ctx, nil)
	if (err != nil) != b.wantErr {
		t.Fatalf("workflow error %v, want error: %v", err, b.wantErr)
	}
	if b.check != nil {
		stand.mu.Lock()
		b.check(t, append([]string(nil), stand.events...))
		stand.mu.Unlock()
	}
	if b.workflow == wf.RestoreWorkflowName && !strings.Contains(b.name, "dry-run") {
		// The restore's emergency backup and clean-up are their own runs.
		waitClosed(ctx, t, c, id+"-cleanup", !b.wantErr)
	}
	h := history(ctx, t, c, id, run.GetRunID())
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(wf.BackupWorkflow, workflow.RegisterOptions{Name: wf.BackupWorkflowName})
	r.RegisterWorkflowWithOptions(wf.RestoreWorkflow, workflow.RegisterOptions{Name: wf.RestoreWorkflowName})
	r.RegisterWorkflowWithOptions(wf.CleanupWorkflow, workflow.RegisterOptions{Name: wf.CleanupWorkflowName})
	r.RegisterWorkflowWithOptions(wf.RestoreCleanupWorkflow, workflow.RegisterOptions{Name: wf.RestoreCleanupWorkflowName})
	r.RegisterWorkflowWithOptions(wf.RestoreDrillWorkflow, workflow.RegisterOptions{Name: wf.RestoreDrillWorkflowName})
	r.RegisterWorkflowWithOptions(wf.OffsiteCopyWorkflow, workflow.RegisterOptions{Name: wf.OffsiteCopyWorkflowName})
	if err := r.ReplayWorkflowHistoryWithOptions(nil, h, worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: id, RunID: run.GetRunID()},
	}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if os.Getenv("VULCAN_RECORD_HISTORY") == "" {
		return
	}
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join("..", "workflows", "testdata", b.workflow+"-"+b.name+".json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(strings.TrimSuffix(p, ".json")+".execution", []byte(id+" "+run.GetRunID()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitForState polls the progress query until the workflow is in state.
func waitForState(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun, state string, step int) {
	t.Helper()
	for ctx.Err() == nil {
		if v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), wf.ProgressQuery); err == nil {
			var p wf.Progress
			if v.Get(&p) == nil && p.State == state && p.Step >= max(step, 1) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("workflow never reached state %s", state)
}

// waitClosed waits until the workflow id has ended, when want says it exists.
func waitClosed(ctx context.Context, t *testing.T, c client.Client, id string, want bool) {
	t.Helper()
	if !want {
		return
	}
	if err := c.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		t.Fatalf("%s: %v", id, err)
	}
}

// asks is a worker's grant that waits timeout for a decision, with the
// search attributes registered.
func asks(timeout time.Duration) wf.Grant {
	return wf.Grant{OnFailure: wf.OnFailureAsk, DecisionTimeout: timeout, SearchAttributes: true, Host: "branch-host"}
}

// standIns are activities with the real names and signatures that succeed,
// fail (non-retryably, so the branch is short) or block until cancelled.
type standIns struct {
	mu     sync.Mutex
	fail   map[string]int
	block  string
	grant  wf.Grant
	calls  map[string]int
	events []string // "<activity>" as each starts, "<activity> stopped" when a blocked one has
	// offsite: the commit marks the backup for an off-site copy.
	offsite bool
}

func (s *standIns) check(ctx context.Context, name string) error {
	s.mu.Lock()
	s.calls[name]++
	n, limit := s.calls[name], s.fail[name]
	s.events = append(s.events, name)
	if strings.HasSuffix(activity.GetInfo(ctx).TaskQueue, wf.DrillTaskQueue("")) {
		s.events = append(s.events, name+onDrillQueue)
	}
	s.mu.Unlock()
	if name == s.block && n == 1 {
		for ctx.Err() == nil {
			activity.RecordHeartbeat(ctx, n)
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(time.Second) // like a tool that takes a moment to stop
		s.mu.Lock()
		s.events = append(s.events, name+" stopped")
		s.mu.Unlock()
		return ctx.Err()
	}
	if limit < 0 || n <= limit {
		return temporal.NewNonRetryableApplicationError(name+" failed (stand-in)", "StandIn", errors.New("injected"))
	}
	return nil
}

func (s *standIns) register(w worker.Worker) {
	plan := wf.RestorePlan{Archive: "/r/backups/a.tar.gz", Manifest: "/r/backups/a.json", BackupID: "20250101_000000",
		HasDatabase: true, Paths: []string{"storage"}, Database: "vulcan"}
	reg := func(name string, fn any) { w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(wf.AcquireLockActivity, func(ctx context.Context, _ wf.LockRequest) (wf.Grant, error) {
		return s.grant, s.check(ctx, wf.AcquireLockActivity)
	})
	reg(wf.ReleaseLockActivity, func(ctx context.Context, _ wf.LockRequest) error { return s.check(ctx, wf.ReleaseLockActivity) })
	reg(wf.PrepareBackupActivity, func(ctx context.Context, p wf.BackupPlan) (wf.BackupPlan, error) {
		p.ID = "20250102_000000"
		return p, s.check(ctx, wf.PrepareBackupActivity)
	})
	reg(wf.DumpDatabaseActivity, func(ctx context.Context, _ wf.BackupPlan) (wf.DumpOutput, error) {
		return wf.DumpOutput{Size: 10, Tables: 2}, s.check(ctx, wf.DumpDatabaseActivity)
	})
	reg(wf.ArchiveStorageActivity, func(ctx context.Context, _ wf.BackupPlan) (wf.ArchiveOutput, error) {
		return wf.ArchiveOutput{Files: 3}, s.check(ctx, wf.ArchiveStorageActivity)
	})
	reg(wf.VerifyBackupActivity, func(ctx context.Context, _ wf.BackupPlan) error { return s.check(ctx, wf.VerifyBackupActivity) })
	reg(wf.CommitBackupActivity, func(ctx context.Context, p wf.BackupPlan) (wf.BackupResult, error) {
		return wf.BackupResult{ID: p.ID, Kind: p.Kind, Manifest: "backups/e.json", Database: true, OffsitePending: s.offsite},
			s.check(ctx, wf.CommitBackupActivity)
	})
	reg(wf.CopyOffsiteActivity, func(ctx context.Context, in wf.OffsiteInput) (wf.OffsiteResult, error) {
		return wf.OffsiteResult{Copied: []string{in.BackupID}, Objects: 3, Uploaded: 1}, s.check(ctx, wf.CopyOffsiteActivity)
	})
	reg(wf.CollectOffsiteActivity, func(ctx context.Context, _ wf.OffsiteInput) (wf.CollectResult, error) {
		return wf.CollectResult{Deleted: []string{}, Kept: []string{"20250102_000000"}}, s.check(ctx, wf.CollectOffsiteActivity)
	})
	reg(wf.ApplyRetentionActivity, func(ctx context.Context, _ wf.RetentionInput) (wf.RetentionOutput, error) {
		return wf.RetentionOutput{}, s.check(ctx, wf.ApplyRetentionActivity)
	})
	for _, name := range []string{wf.ListForBackupActivity, wf.RunningServicesActivity} {
		reg(name, func(ctx context.Context) ([]string, error) { return []string{"app"}, s.check(ctx, name) })
	}
	for _, name := range []string{wf.StopForBackupActivity, wf.StartAfterBackupActivity, wf.StopServicesActivity, wf.StartServicesActivity} {
		reg(name, func(ctx context.Context, _ []string) error { return s.check(ctx, name) })
	}
	reg(wf.ReportOutcomeActivity, func(ctx context.Context, _ wf.Outcome) error { return s.check(ctx, wf.ReportOutcomeActivity) })
	reg(wf.ValidateArchiveActivity, func(ctx context.Context, _ wf.RestoreInput) (wf.RestorePlan, error) {
		return plan, s.check(ctx, wf.ValidateArchiveActivity)
	})
	reg(wf.DrillPrepareActivity, func(ctx context.Context, in wf.DrillInput) (wf.DrillPlan, error) {
		return wf.DrillPlan{DrillID: in.DrillID, BackupID: "20250101_000000", RTO: time.Minute, Grant: s.grant}, s.check(ctx, wf.DrillPrepareActivity)
	})
	reg(wf.DrillRestoreActivity, func(ctx context.Context, _ wf.DrillPlan) (wf.DrillRestored, error) {
		return wf.DrillRestored{Files: 3, Loaded: true, Phases: map[string]float64{"validate and extract": 1, "load": 1}}, s.check(ctx, wf.DrillRestoreActivity)
	})
	reg(wf.DrillVerifyActivity, func(ctx context.Context, _ wf.DrillVerifyInput) (wf.DrillVerified, error) {
		return wf.DrillVerified{Phases: map[string]float64{"verify": 1}}, s.check(ctx, wf.DrillVerifyActivity)
	})
	reg(wf.DrillCleanActivity, func(ctx context.Context, _ wf.DrillPlan) error { return s.check(ctx, wf.DrillCleanActivity) })
	reg(wf.DrillReportActivity, func(ctx context.Context, _ wf.DrillReport) error { return s.check(ctx, wf.DrillReportActivity) })
	reg(wf.FreeRestoreIDActivity, func(ctx context.Context, wanted string) (string, error) {
		return wanted, s.check(ctx, wf.FreeRestoreIDActivity)
	})
	reg(wf.PrepareUndoActivity, func(ctx context.Context, _ wf.StageInput) (wf.StagedPlan, error) {
		return wf.StagedPlan{Plan: plan, Staged: wf.StorageOutput{Paths: plan.Paths, Files: 3}}, s.check(ctx, wf.PrepareUndoActivity)
	})
	reg(wf.ValidateAndStageActivity, func(ctx context.Context, _ wf.StageInput) (wf.StagedPlan, error) {
		return wf.StagedPlan{Plan: plan, Staged: wf.StorageOutput{Paths: plan.Paths, Files: 3}}, s.check(ctx, wf.ValidateAndStageActivity)
	})
	reg(wf.StageDatabaseActivity, func(ctx context.Context, _ wf.StepInput) (wf.DatabaseOutput, error) {
		return wf.DatabaseOutput{Mode: "rename"}, s.check(ctx, wf.StageDatabaseActivity)
	})
	reg(wf.RestoreDatabaseActivity, func(ctx context.Context, _ wf.StepInput) (wf.DatabaseOutput, error) {
		return wf.DatabaseOutput{Mode: "rename"}, s.check(ctx, wf.RestoreDatabaseActivity)
	})
	reg(wf.RestoreStorageActivity, func(ctx context.Context, _ wf.StepInput) (wf.StorageOutput, error) {
		return wf.StorageOutput{Paths: plan.Paths}, s.check(ctx, wf.RestoreStorageActivity)
	})
	reg(wf.VerifyRestoreActivity, func(ctx context.Context, _ wf.VerifyInput) (wf.VerifyOutput, error) {
		return wf.VerifyOutput{Files: 3, Tables: 2}, s.check(ctx, wf.VerifyRestoreActivity)
	})
	for _, name := range []string{wf.FinishRestoreActivity, wf.DiscardStagingActivity, wf.AnalyzeRestoredActivity} {
		reg(name, func(ctx context.Context, _ wf.StepInput) error { return s.check(ctx, name) })
	}
	for _, name := range []string{wf.RollbackStorageActivity, wf.RollbackDatabaseActivity} {
		reg(name, func(ctx context.Context, _ wf.RollbackInput) (wf.RollbackOutput, error) {
			return wf.RollbackOutput{Action: "undone"}, s.check(ctx, name)
		})
	}
}

// undoneAfterStopped checks that the undo of a cancelled step began only once
// the step's activity had stopped.
func undoneAfterStopped(step, undo string) func(*testing.T, []string) {
	return func(t *testing.T, events []string) {
		t.Helper()
		started, stopped, undone := -1, -1, -1
		for i, e := range events {
			switch {
			case e == step && started < 0:
				started = i
			case e == step+" stopped":
				stopped = i
			case e == undo && started >= 0 && undone < 0:
				undone = i
			}
		}
		if started < 0 || stopped < 0 || undone < stopped {
			t.Fatalf("%s began before the cancelled %s stopped: %v", undo, step, events)
		}
	}
}
