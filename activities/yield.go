package activities

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/faultpoint"
	"github.com/project-vulcan/vulcan-backup/internal/lock"
	"github.com/project-vulcan/vulcan-backup/internal/restore"
)

// lockHolderRuns reports whether the workflow holding the operation lock
// still runs; without Temporal it assumes so.
func (a *Activities) lockHolderRuns(ctx context.Context, h lock.Holder) (bool, error) {
	if a.Temporal == nil {
		return true, nil
	}
	resp, err := a.Temporal.DescribeWorkflowExecution(ctx, h.WorkflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return resp.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// Yielding: how often a drill step looks at the operation lock, and how
// often, while it is held, it looks again.
const (
	yieldCheckEvery = 250 * time.Millisecond
	yieldPoll       = 200 * time.Millisecond
)

// yieldingProgress is a drill step's progress that pauses the drill while a
// backup or a restore holds the operation lock: the drill takes no lock of
// its own and gives way, within one progress report (a file, or 8 MiB), to
// the operations that do. While paused it reports the pause as progress,
// so neither Temporal nor the stall watch takes it for a stuck step.
type yieldingProgress struct {
	restore.Progress
	ctx    context.Context
	a      *Activities
	hb     *heartbeat
	mu     sync.Mutex
	last   time.Time
	paused time.Duration
	// point is the fault point hit once a file is reported, if any.
	point string
}

func (a *Activities) drillProgress(ctx context.Context, hb *heartbeat) *yieldingProgress {
	return &yieldingProgress{Progress: a.progress(hb), ctx: ctx, a: a, hb: hb}
}

// Set reports v, then waits while an operation holds the lock.
func (p *yieldingProgress) Set(v any) {
	p.Progress.Set(v)
	if pr, ok := v.(archive.Progress); ok && pr.Files > 1 && p.point != "" {
		faultpoint.Hit(p.point)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < yieldCheckEvery {
		return
	}
	start := time.Now()
	p.wait()
	p.last = time.Now()
	p.paused += p.last.Sub(start)
}

// wait returns once no running operation holds the lock, the lock cannot be
// read (the drill goes on) or the step is cancelled.
func (p *yieldingProgress) wait() {
	logged := false
	for {
		h, err := lock.Current(p.a.Backups.Path)
		if err != nil || h == nil {
			return
		}
		if runs, err := p.a.lockHolderRuns(p.ctx, *h); err != nil || !runs {
			return
		}
		if !logged {
			p.a.log(p.ctx).Info("drill paused: an operation holds the lock", "operation", h.Operation, "workflow", h.WorkflowID)
			logged = true
		}
		p.hb.set(map[string]string{"paused": "waiting for " + h.Operation + " " + h.WorkflowID})
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(yieldPoll):
		}
	}
}

// Paused is how long the drill has waited so far.
func (p *yieldingProgress) Paused() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}
