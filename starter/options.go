package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/project-vulcan/vulcan-backup/control"
	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/config"
	"github.com/project-vulcan/vulcan-backup/internal/store"
	"github.com/project-vulcan/vulcan-backup/internal/webui"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// globalOptions are the flags every command shares, defaulting from the
// environment.
type globalOptions struct {
	cfg    config.Config
	json   bool
	uiURL  string
	in     io.Reader
	out    io.Writer
	errOut io.Writer
	// decideOnTerminal: an operation that waits for a decision asks on the
	// terminal (an interactive backup, or restore without --yes).
	decideOnTerminal bool

	address, namespace, taskQueue, root, backupDir string
}

func (g *globalOptions) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&g.address, "address", "", "Temporal frontend host:port ($TEMPORAL_ADDRESS, default 127.0.0.1:7233)")
	f.StringVar(&g.namespace, "namespace", "", "Temporal namespace ($TEMPORAL_NAMESPACE, default default)")
	f.StringVar(&g.taskQueue, "task-queue", "", "task queue ($VULCAN_TASK_QUEUE, default vulcan-backup)")
	f.StringVar(&g.root, "root", "", "project root; archive paths are relative to it ($VULCAN_ROOT, default .)")
	f.StringVar(&g.backupDir, "backup-dir", "", "backup directory, relative to the root ($VULCAN_BACKUP_DIR, default backups)")
	f.StringVar(&g.uiURL, "ui-url", "", "Web UI base URL for links ($VULCAN_UI_URL, default http://<temporal host>:$VULCAN_UI_PORT)")
	f.BoolVar(&g.json, "json", false, "print the result as JSON")
}

// load merges the environment and the flags.
func (g *globalOptions) load(cmd *cobra.Command) error {
	cfg, err := config.FromEnv()
	if err != nil {
		return usageError{err}
	}
	for flag, dst := range map[string]*string{
		"address": &cfg.TemporalAddress, "namespace": &cfg.Namespace, "task-queue": &cfg.TaskQueue,
		"root": &cfg.Root, "backup-dir": &cfg.BackupDir,
	} {
		if v, _ := cmd.Flags().GetString(flag); v != "" {
			*dst = v
		}
	}
	g.cfg = cfg
	return nil
}

func (g *globalOptions) backups() (store.Dir, string, error) {
	root, err := g.cfg.AbsRoot()
	if err != nil {
		return store.Dir{}, "", usageError{err}
	}
	dir, err := g.cfg.AbsBackupDir()
	if err != nil {
		return store.Dir{}, "", usageError{err}
	}
	return store.Dir{Path: dir}, root, nil
}

// dial connects to Temporal, or fails with exit code 5.
func (g *globalOptions) dial(ctx context.Context) (client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.DialContext(dctx, client.Options{
		HostPort: g.cfg.TemporalAddress, Namespace: g.cfg.Namespace, Logger: sdklog.NewStructuredLogger(discardLogger()),
	})
	if err != nil {
		return nil, fail(ExitUnreachable, "cannot reach Temporal at %s (namespace %s): %v\n  is the worker running? `make run` starts it with an embedded server",
			g.cfg.TemporalAddress, g.cfg.Namespace, err)
	}
	return c, nil
}

// webURL links to a workflow run in the Web UI.
func (g *globalOptions) webURL(workflowID, runID string) string {
	base := g.uiURL
	if base == "" {
		base = envOr("VULCAN_UI_URL", "")
	}
	if base == "" {
		host, _, err := net.SplitHostPort(g.cfg.TemporalAddress)
		if err != nil || host == "" {
			host = "127.0.0.1"
		}
		if g.cfg.UIPort == 0 {
			return ""
		}
		base = "http://" + net.JoinHostPort(host, strconv.Itoa(g.cfg.UIPort))
	}
	return webui.RunLink(base, g.cfg.Namespace, workflowID, runID)
}

func (g *globalOptions) printJSON(v any) error {
	enc := json.NewEncoder(g.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// follow waits for a workflow, printing progress to stderr unless --json.
func (g *globalOptions) follow(ctx context.Context, c client.Client, run client.WorkflowRun, out any) error {
	var show func(workflows.Progress)
	if !g.json {
		show = func(p workflows.Progress) {
			line := fmt.Sprintf("[%d/%d] %s: %s", p.Step, p.Steps, p.StepName, p.State)
			// A failure's message is the error the starter ends with.
			if p.Message != "" && p.State != workflows.StateRunning && p.State != workflows.StateFailed {
				line += " (" + p.Message + ")"
			}
			fmt.Fprintln(g.errOut, line)
		}
	}
	return control.Follow(ctx, c, run, 500*time.Millisecond, show, out)
}

// workflowError turns a failed workflow into an operator message and exit
// code: one sentence (what failed, at which step, what was done about it),
// the Web UI link, and with --json the whole error chain.
func (g *globalOptions) workflowError(what string, run client.WorkflowRun, err error) error {
	link := g.webURL(run.GetID(), run.GetRunID())
	suffix := ""
	if link != "" {
		suffix = "\n  details: " + link
	}
	if g.json {
		_ = g.printJSON(map[string]any{"workflow_id": run.GetID(), "run_id": run.GetRunID(), "error": err.Error(), "error_types": control.ErrorTypes(err)})
	}
	var waiting *control.AwaitingOperator
	if errors.As(err, &waiting) {
		if waiting.Progress.State == workflows.StateAwaiting {
			return fail(ExitOperator, "%s waits for a decision: step %d (%s) failed: %s\n  fix the cause, then `starter retry %s` (or decide in the Web UI); the workflow keeps waiting%s",
				what, waiting.Progress.Step, waiting.Progress.StepName, waiting.Progress.Message, run.GetID(), suffix)
		}
		return fail(ExitOperator, "%s needs an operator: %s\n  the workflow %s keeps waiting%s", what, waiting.Progress.Message, run.GetID(), suffix)
	}
	types := control.ErrorTypes(err)
	has := func(t string) bool { return slices.Contains(types, t) }
	msg := control.Outer(err)
	switch {
	case has(workflows.ErrTypeRollbackIncomplete):
		return fail(ExitOperator, "%s failed: %s%s", what, msg, suffix)
	case has(workflows.ErrTypeBusy):
		return fail(ExitBusy, "%s refused: %s%s", what, control.Root(err), suffix)
	case has(workflows.ErrTypeRolledBack):
		return fail(ExitFailed, "%s failed and was rolled back: %s%s", what, msg, suffix)
	case has(workflows.ErrTypeIntegrity):
		// The archive's own message may already say it.
		root := strings.TrimPrefix(control.Root(err), archive.ErrIntegrity.Error()+": ")
		return fail(ExitIntegrity, "%s: %v: %s%s", what, archive.ErrIntegrity, root, suffix)
	case has(workflows.ErrTypeBadInput):
		return fail(ExitUsage, "%s: %s%s", what, control.Root(err), suffix)
	case temporal.IsCanceledError(err):
		return fail(ExitFailed, "%s cancelled%s", what, suffix)
	}
	return fail(ExitFailed, "%s failed: %s%s", what, msg, suffix)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// confirm asks a yes/no question on stdin; without a terminal answer it is no.
func (g *globalOptions) confirm(question string) bool {
	fmt.Fprintf(g.errOut, "%s [y/N] ", question)
	var answer string
	if _, err := fmt.Fscanln(g.in, &answer); err != nil {
		fmt.Fprintln(g.errOut)
		return false
	}
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// runWorkflow dials Temporal, starts a workflow with start, and either
// returns at once (detach: prints the ids) or follows it to the end, decoding
// its result into out. With --json it prints the result too. It returns the
// run and whether the caller still has to print the human summary.
func (g *globalOptions) runWorkflow(ctx context.Context, what string, detach bool, start func(context.Context, client.Client) (client.WorkflowRun, error), out any) (client.WorkflowRun, bool, error) {
	c, err := g.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	defer c.Close()
	run, err := start(ctx, c)
	if err != nil {
		return nil, false, fail(ExitFailed, "%v", err)
	}
	if detach {
		return run, false, g.reportStarted(what, run.GetID(), run.GetRunID())
	}
	if !g.json {
		fmt.Fprintf(g.errOut, "%s started: workflow %s\n", what, run.GetID())
	}
	for {
		err := g.follow(ctx, c, run, out)
		var waiting *control.AwaitingOperator
		if g.decideOnTerminal && errors.As(err, &waiting) && waiting.Progress.State == workflows.StateAwaiting {
			if action := g.askDecision(what, waiting.Progress); action != "" {
				if derr := control.Decide(ctx, c, run.GetID(), action); derr != nil {
					fmt.Fprintf(g.errOut, "%v\n", derr)
				}
				continue
			}
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return run, false, g.interrupted(what, c, run, out)
		}
		return run, false, g.workflowError(what, run, err)
	}
	if g.json {
		return run, false, g.printJSON(map[string]any{"workflow_id": run.GetID(), "run_id": run.GetRunID(), "result": out})
	}
	return run, true, nil
}
