package workflows

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// DrillSteps names the steps of a restore drill, for progress.
var DrillSteps = []string{"prepare", "validate and extract, load", "verify and check", "clean up"}

// DrillInput asks for a restore drill: of the backup Archive names, or of
// the newest verified one.
type DrillInput struct {
	Archive string `json:"archive,omitempty"`
	// DrillID is the id the drill asks for, its start second; set by the
	// workflow. The prepare step moves it on past any second another
	// drill's scratch root has (DrillPlan.DrillID is the one it got).
	DrillID string `json:"drill_id,omitempty"`
	// Owner names the drill's claim on its scratch root: the run id.
	Owner string `json:"owner,omitempty"`
	// FromRemote drills the backup's off-site copy, downloaded for the
	// drill, even where the backup is here too.
	FromRemote bool `json:"from_remote,omitempty"`
}

// DrillPlan is what the drill's steps need: the backup and the objective.
type DrillPlan struct {
	DrillID  string        `json:"drill_id"`
	BackupID string        `json:"backup_id"`
	Archive  string        `json:"archive"`
	Manifest string        `json:"manifest"`
	RTO      time.Duration `json:"rto"`
	// Grant says what a failed step does (VULCAN_DRILL_ON_FAILURE) and
	// whether search attributes are kept.
	Grant Grant `json:"grant"`
	// Removed lists what dead drills had left, removed first.
	Removed []string `json:"removed,omitempty"`
	// Source is "remote" where the backup is downloaded from the off-site
	// store into Archive and Manifest (the drill's own copy), else "".
	Source string `json:"source,omitempty"`
}

// DrillRestored is what the restore step did and how long each phase took.
type DrillRestored struct {
	Files  int                `json:"files"`
	Bytes  int64              `json:"bytes"`
	Loaded bool               `json:"loaded"`
	Phases map[string]float64 `json:"phases"` // seconds
	// PausedS is how long the step gave way to a backup or a restore; the
	// phases do not count it.
	PausedS float64 `json:"paused_seconds,omitempty"`
}

// DrillVerified is what the verify step found.
type DrillVerified struct {
	Problems    []string           `json:"problems,omitempty"`
	CheckOutput string             `json:"check_output,omitempty"`
	CheckFailed string             `json:"check_failed,omitempty"`
	Phases      map[string]float64 `json:"phases"`                   // seconds
	PausedS     float64            `json:"paused_seconds,omitempty"` // as in DrillRestored
}

// DrillReport is the evidence a drill leaves (backups/drills/<id>.json).
type DrillReport struct {
	DrillID   string             `json:"drill_id"`
	BackupID  string             `json:"backup_id"`
	Source    string             `json:"source"`
	StartedAt time.Time          `json:"started_at"`
	Phases    map[string]float64 `json:"phases"`
	TotalS    float64            `json:"total_seconds"`
	RTOS      float64            `json:"rto_seconds"`
	WithinRTO bool               `json:"within_rto"`
	// PausedS is how long the drill gave way to backups and restores,
	// apart from the phases.
	PausedS     float64  `json:"paused_seconds,omitempty"`
	Slowest     string   `json:"slowest_phase,omitempty"`
	Passed      bool     `json:"passed"`
	Error       string   `json:"error,omitempty"`
	Files       int      `json:"files"`
	Loaded      bool     `json:"database_loaded"`
	CheckOutput string   `json:"check_output,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
}

// RestoreDrillWorkflow restores a backup into a scratch root and a scratch
// database through the same checked extraction and load a restore uses,
// verifies every file and row count, runs the operator's check, times each
// phase against the recovery time objective and writes a report. It never
// stops a service, never touches the live data and takes no operation lock;
// it always cleans up, and the next drill removes what a dead one left.
func RestoreDrillWorkflow(ctx workflow.Context, in DrillInput) (_ *DrillReport, err error) {
	info := workflow.GetInfo(ctx)
	in.DrillID, in.Owner = RestoreIDFor(info.WorkflowStartTime), info.WorkflowExecution.RunID
	prog := &Progress{Operation: "drill", Steps: len(DrillSteps), State: StateRunning}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return *prog, nil }); err != nil {
		return nil, err
	}
	decisions, err := newDecisions(ctx)
	if err != nil {
		return nil, err
	}
	rep := &DrillReport{DrillID: in.DrillID, Source: "local", StartedAt: info.WorkflowStartTime.UTC(), Phases: map[string]float64{}}
	var pub *publisher // once the prepare step says whether search attributes are kept
	step := func(i int) string {
		if prog.Step > 0 {
			prog.Completed = append(prog.Completed, prog.StepName)
		}
		prog.Step, prog.StepName = i+1, DrillSteps[i]
		pub.publish(ctx, prog)
		return "drill: " + DrillSteps[i]
	}
	var plan DrillPlan // the scratch copies are the prepare step's to name
	defer func() {
		dctx := disconnected(ctx)
		summary := step(3)
		if cerr := call(dctx, DrillCleanActivity, summary, plan).Get(dctx, nil); cerr != nil {
			workflow.GetLogger(ctx).Error("cleaning up the drill failed", "error", cerr)
			err = firstNonNil(err, fmt.Errorf("clean up drill %s: %w", in.DrillID, cerr))
		}
		rep.finish(err)
		prog.State, prog.Message = StateCompleted, strings.Join(rep.Warnings, "; ")
		if err != nil {
			prog.State, prog.Message = StateFailed, rootMessage(err)
		}
		pub.publish(dctx, prog)
		if rerr := call(dctx, DrillReportActivity, "drill: write the report", *rep).Get(dctx, nil); rerr != nil {
			workflow.GetLogger(ctx).Error("writing the drill report failed", "error", rerr)
		}
		prog.BackupID = rep.BackupID
		report(ctx, Outcome{Operation: "drill", Warnings: rep.Warnings}, err, prog)
	}()

	if err := call(ctx, DrillPrepareActivity, step(0), in).Get(ctx, &plan); err != nil {
		return nil, wrap("prepare the drill", err)
	}
	rep.DrillID, rep.BackupID, rep.RTOS = plan.DrillID, plan.BackupID, plan.RTO.Seconds()
	if plan.Source != "" {
		rep.Source = plan.Source
	}
	prog.BackupID = plan.BackupID
	pub = &publisher{grant: plan.Grant}
	pub.publish(ctx, prog)
	a := asking{lock: &opLock{grant: plan.Grant}, decisions: decisions, prog: prog, pub: pub, op: Outcome{Operation: "drill"}}
	// attempt runs a step; where it fails for good and the worker asks for
	// drills (VULCAN_DRILL_ON_FAILURE=ask), an operator decides: retry runs
	// it again, abort (or no answer by the deadline) cleans up and fails.
	attempt := func(run func() error) error {
		for {
			err := run()
			if err == nil || !a.asks(err) || a.ask(ctx, err, DecisionAbort, drillChoices...) != DecisionRetry {
				return err
			}
		}
	}
	// The restore and verify steps, which read and write the whole backup,
	// run on the drill worker: a process of its own at the lowest CPU and
	// I/O priority, so the drill takes what the application leaves. A
	// cancelled one has stopped writing before the clean-up starts.
	low, heavy := ctx, call
	if workflow.GetVersion(ctx, "drill-low-priority", workflow.DefaultVersion, 1) == 1 {
		low, heavy = onQueue(ctx, DrillTaskQueue(info.TaskQueueName)), callAndWait
	}
	var restored DrillRestored
	summary := step(1)
	if err := attempt(func() error { return heavy(low, DrillRestoreActivity, summary, plan).Get(ctx, &restored) }); err != nil {
		return nil, wrap(fmt.Sprintf("drill of backup %s", plan.BackupID), err)
	}
	rep.Files, rep.Loaded, rep.PausedS = restored.Files, restored.Loaded, restored.PausedS
	rep.addPhases(restored.Phases)
	var verified DrillVerified
	summary = step(2)
	if err := attempt(func() error {
		return heavy(low, DrillVerifyActivity, summary, DrillVerifyInput{Plan: plan, Loaded: restored.Loaded}).Get(ctx, &verified)
	}); err != nil {
		return nil, wrap(fmt.Sprintf("drill of backup %s", plan.BackupID), err)
	}
	rep.addPhases(verified.Phases)
	rep.PausedS += verified.PausedS
	rep.CheckOutput = verified.CheckOutput
	switch {
	case len(verified.Problems) > 0:
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("drill of backup %s: the restored copy does not match the backup: %s",
			plan.BackupID, strings.Join(verified.Problems, "; ")), ErrTypeVerify, nil)
	case verified.CheckFailed != "":
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("drill of backup %s: the operator check failed: %s",
			plan.BackupID, verified.CheckFailed), ErrTypeVerify, nil)
	}
	return rep, nil
}

// drillChoices are what an operator may answer to a drill step that failed
// for good.
var drillChoices = []choice{
	{DecisionRetry, "runs the step again (fix the cause first)"},
	{DecisionAbort, "removes the scratch copies and fails the drill"},
}

// DrillVerifyInput asks the verify step to check plan's scratch copies.
type DrillVerifyInput struct {
	Plan   DrillPlan `json:"plan"`
	Loaded bool      `json:"loaded"`
}

func (r *DrillReport) addPhases(p map[string]float64) {
	for k, v := range p {
		r.Phases[k] = v
	}
}

// finish totals the phases, judges them against the objective and records
// the outcome.
func (r *DrillReport) finish(err error) {
	names := make([]string, 0, len(r.Phases))
	for k := range r.Phases {
		names = append(names, k)
	}
	sort.Strings(names) // map order is random: sum and compare in one order
	r.TotalS = 0
	for _, k := range names {
		r.TotalS += r.Phases[k]
		if r.Slowest == "" || r.Phases[k] > r.Phases[r.Slowest] {
			r.Slowest = k
		}
	}
	r.Passed = err == nil
	if err != nil {
		r.Error = rootMessage(err)
	}
	r.WithinRTO = r.RTOS == 0 || r.TotalS <= r.RTOS
	if !r.WithinRTO {
		r.Warnings = append(r.Warnings, fmt.Sprintf("the drill took %.0f s, over the recovery time objective of %.0f s; the slowest phase was %s (%.0f s)",
			r.TotalS, r.RTOS, r.Slowest, r.Phases[r.Slowest]))
	}
}

func firstNonNil(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
