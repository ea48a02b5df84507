// Command worker runs Vulcan Backup's workflows and activities. With --dev it
// also runs an embedded Temporal server (SQLite under .vulcan/) and the
// Temporal Web UI, so nothing else is needed on a laptop. On start it makes
// sure the nightly backup schedule exists.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/project-vulcan/vulcan-backup/activities"
	"github.com/project-vulcan/vulcan-backup/control"
	"github.com/project-vulcan/vulcan-backup/internal/config"
	"github.com/project-vulcan/vulcan-backup/internal/devserver"
	"github.com/project-vulcan/vulcan-backup/internal/pgdump"
	"github.com/project-vulcan/vulcan-backup/internal/services"
	"github.com/project-vulcan/vulcan-backup/internal/store"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	dev := flag.Bool("dev", false, "also run an embedded Temporal server (SQLite in .vulcan/) and the Web UI")
	stateDir := flag.String("state-dir", ".vulcan", "directory of the embedded server's SQLite file (with --dev)")
	flag.StringVar(&cfg.TemporalAddress, "address", cfg.TemporalAddress, "Temporal frontend host:port ($TEMPORAL_ADDRESS)")
	flag.IntVar(&cfg.UIPort, "ui-port", cfg.UIPort, "Web UI port with --dev, 0 for none ($VULCAN_UI_PORT)")
	flag.StringVar(&cfg.Namespace, "namespace", cfg.Namespace, "Temporal namespace ($TEMPORAL_NAMESPACE)")
	flag.StringVar(&cfg.TaskQueue, "task-queue", cfg.TaskQueue, "task queue ($VULCAN_TASK_QUEUE)")
	flag.StringVar(&cfg.Root, "root", cfg.Root, "project root ($VULCAN_ROOT)")
	noSchedule := flag.Bool("no-schedule", false, "do not create or update the nightly schedule")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return nil
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *dev {
		srv, err := devserver.Start(ctx, devserver.Options{
			DBFile: filepath.Join(*stateDir, "temporal.db"), Address: cfg.TemporalAddress,
			Namespace: cfg.Namespace, UIPort: cfg.UIPort,
		})
		if err != nil {
			return err
		}
		defer srv.Stop()
		log.Info("embedded Temporal server running", "address", srv.Address(), "namespace", cfg.Namespace,
			"state", filepath.Join(*stateDir, "temporal.db"), "web_ui", srv.UIURL())
	}

	c, err := client.DialContext(ctx, client.Options{
		HostPort: cfg.TemporalAddress, Namespace: cfg.Namespace,
		Logger: sdklog.NewStructuredLogger(log.With("component", "temporal-sdk")),
	})
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", cfg.TemporalAddress, err)
	}
	defer c.Close()

	acts, err := buildActivities(cfg, c, log)
	if err != nil {
		return err
	}
	w := worker.New(c, cfg.TaskQueue, worker.Options{})
	Register(w, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()
	log.Info("worker running", "task_queue", cfg.TaskQueue, "root", acts.Root, "paths", acts.Paths,
		"backups", acts.Backups.Path, "database", dbDesc(acts.DB), "services", acts.Services.Name(), "version", version)

	if !*noSchedule {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		what, err := control.EnsureSchedule(sctx, c, cfg.TaskQueue, cfg.Schedule)
		cancel()
		if err != nil {
			return err
		}
		log.Info("nightly schedule "+what, "schedule", workflows.ScheduleID, "cron", cfg.Schedule, "timezone", "UTC")
	}

	<-ctx.Done()
	log.Info("shutting down: finishing running activities")
	return nil
}

// Register registers the workflows and activities on w.
func Register(w worker.Registry, a *activities.Activities) {
	w.RegisterWorkflowWithOptions(workflows.BackupWorkflow, workflow.RegisterOptions{Name: workflows.BackupWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.RestoreWorkflow, workflow.RegisterOptions{Name: workflows.RestoreWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.CleanupWorkflow, workflow.RegisterOptions{Name: workflows.CleanupWorkflowName})
	a.Register(w)
}

func buildActivities(cfg config.Config, c client.Client, log *slog.Logger) (*activities.Activities, error) {
	root, err := cfg.AbsRoot()
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s %s is not a directory", config.EnvRoot, root)
	}
	dir, err := cfg.AbsBackupDir()
	if err != nil {
		return nil, err
	}
	var db *pgdump.Target
	if cfg.DatabaseURL != "" {
		if db, err = pgdump.Parse(cfg.DatabaseURL); err != nil {
			return nil, err
		}
	} else {
		log.Warn("DATABASE_URL is not set: backups and restores cover files only")
	}
	scfg := services.Config{
		Kind: cfg.Services, ExecStop: cfg.ExecStop, ExecStart: cfg.ExecStart,
		ExecHealth: cfg.ExecHealth, ExecStatus: cfg.ExecStatus, HealthTimeout: cfg.HealthTimeout,
		ComposeProject: cfg.ComposeProject, DockerStopTimeout: cfg.DockerStopTimeout, SystemdUnits: cfg.SystemdUnits,
	}
	ctl, err := services.New(scfg)
	if err != nil {
		return nil, err
	}
	forBackup, err := services.NewForBackup(scfg)
	if err != nil {
		return nil, err
	}
	if err := (store.Dir{Path: dir}).Ensure(); err != nil {
		return nil, err
	}
	return &activities.Activities{
		Root: root, Paths: cfg.Paths, Backups: store.Dir{Path: dir}, DB: db, RetentionDays: cfg.RetentionDays,
		Services: ctl, BackupServices: forBackup, Temporal: c, ToolVersion: "vulcan-backup " + version, Log: log,
	}, nil
}

func dbDesc(db *pgdump.Target) string {
	if db == nil {
		return "none (files only)"
	}
	return db.String()
}
