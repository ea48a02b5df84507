// Command worker runs Vulcan Backup's workflows and activities. With --dev it
// also runs an embedded Temporal server (SQLite under .vulcan/) and the
// Temporal Web UI, so nothing else is needed on a laptop. On start it makes
// sure the nightly backup schedule exists.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/project-vulcan/vulcan-backup/activities"
	"github.com/project-vulcan/vulcan-backup/api"
	"github.com/project-vulcan/vulcan-backup/control"
	"github.com/project-vulcan/vulcan-backup/internal/config"
	"github.com/project-vulcan/vulcan-backup/internal/metrics"
	"github.com/project-vulcan/vulcan-backup/internal/notify"
	"github.com/project-vulcan/vulcan-backup/internal/offsite"
	"github.com/project-vulcan/vulcan-backup/internal/pgdump"
	"github.com/project-vulcan/vulcan-backup/internal/services"
	"github.com/project-vulcan/vulcan-backup/internal/store"
	"github.com/project-vulcan/vulcan-backup/internal/webui"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// embeddedOptions configures the embedded server of --dev.
type embeddedOptions struct {
	DBFile, Address, Namespace string
	UIPort                     int
}

// embeddedServer is the running embedded server.
type embeddedServer interface {
	Address() string
	UIURL() string
	Stop()
}

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
	stateDir := flag.String("state-dir", ".vulcan", "state directory: the embedded server's SQLite file (with --dev) and the generated API restore token")
	flag.StringVar(&cfg.TemporalAddress, "address", cfg.TemporalAddress, "Temporal frontend host:port ($TEMPORAL_ADDRESS)")
	flag.IntVar(&cfg.UIPort, "ui-port", cfg.UIPort, "Web UI port with --dev, 0 for none ($VULCAN_UI_PORT)")
	flag.StringVar(&cfg.Namespace, "namespace", cfg.Namespace, "Temporal namespace ($TEMPORAL_NAMESPACE)")
	flag.StringVar(&cfg.TaskQueue, "task-queue", cfg.TaskQueue, "task queue ($VULCAN_TASK_QUEUE)")
	flag.StringVar(&cfg.Root, "root", cfg.Root, "project root ($VULCAN_ROOT)")
	noSchedule := flag.Bool("no-schedule", false, "do not create or update the nightly schedule")
	drillWorker := flag.Bool(drillWorkerFlag, false, "run as the drill worker the worker starts beside itself (at low priority): only the restore and verify steps of drills")
	serverOnly := flag.Bool("server-only", false, "with --dev: run only the embedded Temporal server and Web UI, for workers started on their own")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return nil
	}
	if *serverOnly && !*dev {
		return fmt.Errorf("--server-only needs --dev: it runs the embedded server without a worker")
	}
	if *drillWorker && *dev {
		return fmt.Errorf("--%s connects to a running server: it does not go with --dev", drillWorkerFlag)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *drillWorker {
		return serveDrills(ctx, cfg, *stateDir, log)
	}
	webUI := cfg.UIURL
	if *dev {
		srv, err := startEmbedded(ctx, embeddedOptions{
			DBFile: filepath.Join(*stateDir, "temporal.db"), Address: cfg.TemporalAddress,
			Namespace: cfg.Namespace, UIPort: cfg.UIPort,
		})
		if err != nil {
			return err
		}
		defer srv.Stop()
		if webUI == "" {
			webUI = srv.UIURL()
		}
		log.Info("embedded Temporal server running", "address", srv.Address(), "namespace", cfg.Namespace,
			"state", filepath.Join(*stateDir, "temporal.db"), "web_ui", srv.UIURL())
		if *serverOnly {
			<-ctx.Done()
			log.Info("stopping the embedded server")
			return nil
		}
	}

	m := metrics.New()
	sdkMetrics, closeMetrics, err := sdkMetricsHandler(m)
	if err != nil {
		return err
	}
	defer closeMetrics()
	c, err := client.DialContext(ctx, client.Options{
		HostPort: cfg.TemporalAddress, Namespace: cfg.Namespace,
		Logger:         sdklog.NewStructuredLogger(log.With("component", "temporal-sdk")),
		MetricsHandler: sdkMetrics,
	})
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", cfg.TemporalAddress, err)
	}
	defer c.Close()

	acts, err := buildActivities(cfg, c, log)
	if err != nil {
		return err
	}
	acts.Metrics, acts.WebUI = m, webUI
	acts.Failure = workflows.Grant{OnFailure: cfg.OnFailure, DecisionTimeout: cfg.DecisionTimeout, RetryWindow: cfg.RetryWindow}
	if *dev {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		added, err := control.EnsureSearchAttributes(sctx, c, cfg.Namespace)
		cancel()
		if err != nil {
			return err
		}
		if len(added) > 0 {
			log.Info("search attributes registered", "names", added, "namespace", cfg.Namespace)
		}
	}
	if acts.NotifyURLs, err = notify.ParseURLs(cfg.NotifyURLs); err != nil {
		return err
	}
	acts.NotifyOnSuccess = cfg.NotifyOnSuccess
	if acts.Offsite, err = startOffsite(ctx, cfg, *stateDir, log); err != nil {
		return err
	}
	m.OffsiteEnabled(acts.Offsite != nil)
	seedMetrics(m, acts.Backups)
	w := worker.New(c, cfg.TaskQueue, workerOptions())
	Register(w, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()
	dctx, stopDrills := context.WithCancel(ctx)
	drillsStopped := superviseDrillWorker(dctx, drillWorkerArgs(cfg, *stateDir), c, acts, cfg.TaskQueue, log)
	defer func() {
		stopDrills()
		drillsStopped()
	}()
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
		sctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		what, err = control.EnsureDrillSchedule(sctx, c, cfg.TaskQueue, cfg.DrillSchedule)
		cancel()
		if err != nil {
			return err
		}
		log.Info("restore drill schedule "+what, "schedule", workflows.DrillScheduleID, "cron", cfg.DrillSchedule, "timezone", "UTC")
	}

	if cfg.APIAddr != "" {
		httpSrv, err := startAPI(cfg, c, acts, m, webUI, *stateDir, log)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = httpSrv.Shutdown(sctx)
		}()
	}

	<-ctx.Done()
	log.Info("shutting down: finishing running activities")
	return nil
}

// startAPI serves the HTTP API and /metrics on cfg.APIAddr.
// workerOptions are the worker's options. On SIGTERM the worker stops taking
// tasks and gives running activities WorkerStopTimeout to finish or record
// their progress in a last heartbeat before their contexts are cancelled.
func workerOptions() worker.Options {
	return worker.Options{
		MaxHeartbeatThrottleInterval: workflows.HeartbeatEvery,
		WorkerStopTimeout:            15 * time.Second,
	}
}

func startAPI(cfg config.Config, c client.Client, acts *activities.Activities, m *metrics.Metrics, webUI, stateDir string, log *slog.Logger) (*http.Server, error) {
	var tokenPath string
	token, err := api.LoadToken(cfg.APIToken, cfg.APITokenFile)
	if err != nil {
		return nil, err
	}
	if err := api.CheckAddress(cfg.APIAddr, token); err != nil {
		return nil, err
	}
	s := &api.Server{Temporal: c, TaskQueue: cfg.TaskQueue, Backups: acts.Backups, Token: token, Address: cfg.APIAddr, Metrics: m.Handler(), Log: log}
	if token == "" {
		// A restore always needs a token: without a configured one, the
		// worker keeps its own in the state directory.
		if s.RestoreToken, tokenPath, err = api.EnsureRestoreToken(stateDir); err != nil {
			return nil, err
		}
		log.Info("the API's restore token is in a file (mode 0600); send it as a bearer token to POST /api/system/restore", "file", tokenPath)
	}
	if webUI != "" {
		s.WebUI = func(id, run string) string {
			return webui.RunLink(webUI, cfg.Namespace, id, run)
		}
	}
	l, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("HTTP API on %s: %w (set VULCAN_API_ADDR to another address, or empty to turn it off)", cfg.APIAddr, err)
	}
	httpSrv := s.NewHTTPServer(cfg.APIAddr)
	go func() {
		if err := httpSrv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP API stopped", "error", err)
		}
	}()
	if token == "" {
		log.Warn("HTTP API without a token: serving on loopback only", "address", "http://"+l.Addr().String())
	} else {
		log.Info("HTTP API running", "address", "http://"+l.Addr().String())
	}
	return httpSrv, nil
}

// sdkMetricsHandler reports the Temporal SDK's worker metrics into the same
// Prometheus registry as ours, through tally.
func sdkMetricsHandler(m *metrics.Metrics) (client.MetricsHandler, func(), error) {
	reporter, err := tallyprom.Configuration{TimerType: "histogram"}.NewReporter(tallyprom.ConfigurationOptions{
		Registry: m.Registry,
		OnError:  func(err error) { slog.Warn("SDK metrics", "error", err) },
	})
	if err != nil {
		return nil, nil, fmt.Errorf("SDK metrics: %w", err)
	}
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
		Prefix:          "temporal",
	}, time.Second)
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)), func() { closer.Close() }, nil // #nosec G104 -- closing the metrics reporter at exit
}

// seedMetrics sets the last-success and retained gauges from the backups on
// disk, so they survive worker restarts.
func seedMetrics(m *metrics.Metrics, dir store.Dir) {
	infos, _, err := dir.List()
	if err != nil {
		return
	}
	for _, i := range infos {
		if i.Verified {
			m.KnownBackup(string(i.Kind), i.CreatedAt)
		}
	}
	m.Retained(len(infos))
	drills, _ := dir.Drills()
	for _, d := range drills {
		if d.Passed {
			m.KnownDrill(d.StartedAt.Add(time.Duration(d.TotalS * float64(time.Second))))
			break
		}
	}
	if last, _ := dir.LastOffsite(); last != nil {
		m.KnownOffsite(last.CopiedAt)
	}
}

// startOffsite reads the off-site settings and checks the store once: a
// URL, key file or credentials that are wrong, or a bucket that is not
// there, stop the worker with the reason; a store that does not answer is
// a warning (the copies retry, pending, and say so).
func startOffsite(ctx context.Context, cfg config.Config, stateDir string, log *slog.Logger) (*activities.Offsite, error) {
	o, err := activities.NewOffsite(cfg, offsiteKeyCache(stateDir))
	if err != nil {
		return nil, fmt.Errorf("off-site store: %w", err)
	}
	if o == nil {
		log.Warn(config.EnvOffsiteURL + " is not set: backups stay on this host only, with no off-site copy")
		return nil, nil
	}
	if err := o.NeedRecipients(); err != nil {
		return nil, fmt.Errorf("off-site store: %w", err)
	}
	octx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	b, err := o.Open(octx)
	var cfgErr *offsite.ConfigError
	switch {
	case errors.As(err, &cfgErr):
		return nil, fmt.Errorf("off-site store %s: %w", o.Location, err)
	case err != nil:
		log.Warn("off-site store does not answer: copies will retry, pending", "location", o.Location.String(), "error", err)
	default:
		log.Info("off-site copies on", "location", b.Location().String(), "recipients", len(o.Recipients),
			"identity", len(o.Identities) > 0, "parallel", o.Parallel, "limit_bytes_per_second", o.Limit)
	}
	return o, nil
}

// offsiteKeyCache is where the worker keeps the off-site name key it
// derived (see activities.NewOffsite).
func offsiteKeyCache(stateDir string) string { return filepath.Join(stateDir, "offsite-name-key.json") }

// Register registers the workflows and activities on w.
func Register(w worker.Registry, a *activities.Activities) {
	w.RegisterWorkflowWithOptions(workflows.BackupWorkflow, workflow.RegisterOptions{Name: workflows.BackupWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.RestoreWorkflow, workflow.RegisterOptions{Name: workflows.RestoreWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.CleanupWorkflow, workflow.RegisterOptions{Name: workflows.CleanupWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.RestoreCleanupWorkflow, workflow.RegisterOptions{Name: workflows.RestoreCleanupWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.RestoreDrillWorkflow, workflow.RegisterOptions{Name: workflows.RestoreDrillWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.OffsiteCopyWorkflow, workflow.RegisterOptions{Name: workflows.OffsiteCopyWorkflowName})
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
		Root: root, Paths: cfg.Paths, Backups: store.Dir{Path: dir}, DB: db, RetentionDays: cfg.RetentionDays, UndoWindow: cfg.UndoWindow, FullEvery: cfg.FullEvery, StallTimeout: cfg.StallTimeout,
		Services: ctl, BackupServices: forBackup, Temporal: c, ToolVersion: "vulcan-backup " + version, Log: log,
		Namespace: cfg.Namespace, RTO: cfg.RTO, DrillCheck: cfg.DrillCheck, DrillOnFailure: cfg.DrillOnFailure,
	}, nil
}

func dbDesc(db *pgdump.Target) string {
	if db == nil {
		return "none (files only)"
	}
	return db.String()
}
