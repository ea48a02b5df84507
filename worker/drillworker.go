package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"golang.org/x/sys/unix"

	"github.com/project-vulcan/vulcan-backup/activities"
	"github.com/project-vulcan/vulcan-backup/internal/config"
	"github.com/project-vulcan/vulcan-backup/internal/lowprio"
	"github.com/project-vulcan/vulcan-backup/internal/metrics"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// drillWorkerFlag runs the worker as the drill worker.
const drillWorkerFlag = "drill-worker"

// drillWorkerRestart bounds the wait before a drill worker that exited is
// started again; it doubles from a second while the worker keeps dying.
const drillWorkerRestart = 30 * time.Second

// drillWorkerStop is how long the drill worker has to finish on SIGTERM
// before it is killed: its own stop timeout and a margin.
const drillWorkerStop = 20 * time.Second

// superviseDrillWorker runs the drill worker (this binary with
// --drill-worker) beside this worker until ctx ends, at the lowest CPU and
// I/O priority, and starts it again whenever it exits. It dies with this
// process. Where it cannot be started at all, this worker polls the drill
// queue itself, at normal priority, and says so.
func superviseDrillWorker(ctx context.Context, args []string, c client.Client, acts *activities.Activities, queue string, log *slog.Logger) (wait func()) {
	exe, err := os.Executable()
	if err == nil {
		_, err = os.Stat(exe)
	}
	if err != nil {
		return drillInProcess(c, acts, queue, log, fmt.Errorf("find this program: %w", err))
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		backoff := time.Second
		for ctx.Err() == nil {
			started := time.Now()
			err := runDrillWorker(ctx, exe, args)
			if ctx.Err() != nil {
				return
			}
			if time.Since(started) > time.Minute {
				backoff = time.Second
			}
			log.Warn("the drill worker exited; starting it again", "error", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, drillWorkerRestart)
		}
	}()
	return func() { <-ended }
}

// runDrillWorker runs the drill worker once, until it exits or ctx ends
// (then it is asked to stop, and killed if it does not).
func runDrillWorker(ctx context.Context, exe string, args []string) error {
	cmd := exec.Command(exe, args...) // #nosec G204 -- this program, with its own flags
	cmd.Stdout, cmd.Stderr, cmd.Env = os.Stdout, os.Stderr, os.Environ()
	wait, err := lowprio.Start(cmd)
	if err != nil {
		return fmt.Errorf("start the drill worker: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- wait() }()
	select {
	case err := <-exited:
		return err
	case <-ctx.Done():
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		return err
	case <-time.After(drillWorkerStop):
		_ = cmd.Process.Kill()
		return <-exited
	}
}

// drillInProcess polls the drill queue from this process, for a host where
// the drill worker cannot run; drills then run at normal priority.
func drillInProcess(c client.Client, acts *activities.Activities, queue string, log *slog.Logger, why error) (wait func()) {
	log.Error("the drill worker cannot run: drills run in this worker at normal priority", "error", why)
	w := worker.New(c, workflows.DrillTaskQueue(queue), workerOptions())
	acts.RegisterDrill(w)
	if err := w.Start(); err != nil {
		log.Error("polling the drill queue failed: drills wait for a drill worker", "error", err)
		return func() {}
	}
	return w.Stop
}

// drillWorkerArgs are the flags that make this binary the drill worker of
// this worker: the same server, namespace, queue, root and state.
func drillWorkerArgs(cfg config.Config, stateDir string) []string {
	return []string{"--" + drillWorkerFlag, "--address", cfg.TemporalAddress, "--namespace", cfg.Namespace,
		"--task-queue", cfg.TaskQueue, "--root", cfg.Root, "--state-dir", stateDir}
}

// serveDrills is the drill worker: it runs the restore and verify steps of
// drills from the drill queue of cfg.TaskQueue, at the priority it was
// started with, until ctx ends.
func serveDrills(ctx context.Context, cfg config.Config, stateDir string, log *slog.Logger) error {
	log = log.With("component", "drill-worker")
	nice, class, level, err := lowprio.Of(unix.Gettid())
	if err != nil {
		return err
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: cfg.TemporalAddress, Namespace: cfg.Namespace, Logger: sdklog.NewStructuredLogger(log.With("component", "temporal-sdk"))})
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", cfg.TemporalAddress, err)
	}
	defer c.Close()
	acts, err := buildActivities(cfg, c, log)
	if err != nil {
		return err
	}
	acts.Metrics = metrics.New() // the main worker serves the metrics
	if acts.Offsite, err = activities.NewOffsite(cfg, offsiteKeyCache(stateDir)); err != nil {
		return fmt.Errorf("off-site store: %w", err)
	}
	queue := workflows.DrillTaskQueue(cfg.TaskQueue)
	opts := workerOptions()
	host, _ := os.Hostname()
	opts.Identity = fmt.Sprintf("%d@%s@drill-worker", os.Getpid(), host)
	w := worker.New(c, queue, opts)
	acts.RegisterDrill(w)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start the drill worker: %w", err)
	}
	defer w.Stop()
	group, grouped, err := lowprio.GroupNice(os.Getpid())
	if err != nil {
		return err
	}
	log.Info("drill worker running", "task_queue", queue, "identity", opts.Identity, "nice", nice, "io_class", class, "io_level", level, "group_nice", group, "autogroup", grouped)
	if nice != lowprio.Nice || (grouped && group != lowprio.Nice) {
		log.Warn("the drill worker runs above the lowest priority: it was started by hand, not by the worker", "nice", nice, "group_nice", group)
	}
	<-ctx.Done()
	return nil
}
