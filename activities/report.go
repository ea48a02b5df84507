package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/project-vulcan/vulcan-backup/internal/notify"
	"github.com/project-vulcan/vulcan-backup/internal/webui"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// ReportOutcome records a finished operation in the metrics (once, on the
// first attempt) and sends the webhook notifications: always on failure, on
// success only with NotifyOnSuccess. An undelivered notification fails the
// attempt, so it is retried.
func (a *Activities) ReportOutcome(ctx context.Context, o workflows.Outcome) error {
	first := !activity.IsActivity(ctx) || activity.GetInfo(ctx).Attempt == 1
	if first && !o.Awaiting {
		if !o.Succeeded {
			step := o.Step
			if step == "" {
				step = "unknown"
			}
			a.Metrics.Failed(o.Operation, step)
			if o.RollbackIncomplete {
				a.Metrics.RollbackIncomplete()
			}
			a.log(ctx).Error(o.Operation+" failed", "step", o.Step, "error", o.Error, "rolled_back", o.RolledBack)
		}
		if o.Operation == "restore" {
			a.Metrics.RestoreFinished(time.Duration(o.DurationS * float64(time.Second)))
		}
	}
	if len(a.NotifyURLs) == 0 || (o.Succeeded && !a.NotifyOnSuccess && len(o.Warnings) == 0) {
		return nil
	}
	// A retried attempt posts only to the URLs an earlier one did not reach
	// (recorded in the heartbeat details by a hash, as webhook URLs often
	// carry a secret), with the same key.
	var done []string
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &done)
	}
	var todo []string
	for _, u := range a.NotifyURLs {
		if !slices.Contains(done, urlHash(u)) {
			todo = append(todo, u)
		}
	}
	key := o.WorkflowID + "/" + o.RunID + "/" + o.Operation + "/" + o.Event
	err := notify.Send(ctx, nil, todo, a.message(o), key, func(u string) {
		done = append(done, urlHash(u))
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, done)
		}
	})
	if err != nil {
		return fmt.Errorf("report outcome: %w", err)
	}
	return nil
}

// urlHash names a webhook URL without revealing it.
func urlHash(u string) string {
	sum := sha256.Sum256([]byte(u))
	return hex.EncodeToString(sum[:8])
}

func (a *Activities) message(o workflows.Outcome) notify.Message {
	host, _ := os.Hostname()
	m := notify.Message{
		Operation: o.Operation, Step: o.Step, Error: o.Error, BackupID: o.BackupID,
		WorkflowID: o.WorkflowID, RunID: o.RunID, Duration: o.DurationS, Host: host, Status: "succeeded",
	}
	m.URL = webui.RunLink(a.WebUI, a.Namespace, o.WorkflowID, o.RunID)
	what := o.Operation
	if o.Kind != "" {
		what = o.Kind + " " + what
	}
	if o.Succeeded {
		m.Text = fmt.Sprintf("Vulcan %s succeeded on %s", what, host)
		if o.BackupID != "" {
			m.Text += " (backup " + o.BackupID + ")"
		}
		if len(o.Warnings) > 0 {
			m.Status = "warning"
			m.Text += ", with warnings: " + strings.Join(o.Warnings, "; ")
		}
	} else {
		m.Status = "failed"
		m.Text = fmt.Sprintf("Vulcan %s FAILED on %s at step %q: %s", what, host, o.Step, o.Error)
		switch {
		case o.Awaiting:
			m.Status = "awaiting-operator"
			m.Text = fmt.Sprintf("Vulcan %s on %s WAITS FOR A DECISION at step %q: %s — retry or roll back from the Web UI (Update decide) or with starter retry %s",
				what, host, o.Step, o.Error, o.WorkflowID)
		case o.RollbackIncomplete:
			m.Status = "rollback-incomplete"
			m.Text += " — the ROLLBACK IS INCOMPLETE: an operator must act (starter retry " + o.WorkflowID + ")"
		case o.RolledBack:
			m.Text += " — the restore was rolled back"
		}
	}
	if m.URL != "" {
		m.Text += "\n" + m.URL
	}
	return m
}
