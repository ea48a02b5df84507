// Package devserver runs a Temporal server inside the worker process, backed
// by a SQLite file, with the Temporal Web UI beside it: everything a laptop
// needs to run Vulcan Backup with one command. History is kept across runs.
package devserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
)

// Options configures the embedded server.
type Options struct {
	// DBFile is the SQLite file; its directory is created. Empty means an
	// in-memory store (tests).
	DBFile string
	// Address is host:port of the frontend.
	Address string
	// Namespace is created if it does not exist.
	Namespace string
	// UIPort is the Web UI port; 0 disables the UI.
	UIPort int
}

// Server is a running embedded Temporal server.
type Server struct {
	srv  temporal.Server
	ui   *uiserver.Server
	opts Options
}

// Start starts the server (and the UI) and returns once the frontend answers.
func Start(ctx context.Context, opts Options) (*Server, error) {
	cfg, err := prepare(&opts)
	if err != nil {
		return nil, err
	}
	// The server's own log is noisy (and alarming at shutdown); it is off
	// unless VULCAN_DEVSERVER_LOG names a level (debug, info, warn, error).
	var logger log.Logger = log.NewNoopLogger()
	if level := os.Getenv("VULCAN_DEVSERVER_LOG"); level != "" {
		logger = log.NewZapLogger(log.BuildZapLogger(log.Config{Level: level}))
	}
	srv, err := newServer(cfg, fatalLogger{logger})
	if err != nil {
		return nil, err
	}
	s := &Server{srv: srv, opts: opts}
	if err := s.waitReady(ctx); err != nil {
		_ = srv.Stop()
		return nil, err
	}
	if opts.UIPort > 0 {
		host, _, _ := net.SplitHostPort(opts.Address)
		s.ui = uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
			Host:                host,
			Port:                opts.UIPort,
			TemporalGRPCAddress: s.opts.Address,
			EnableUI:            true,
			DefaultNamespace:    opts.Namespace,
			HideLogs:            true,
			CORS:                uiconfig.CORS{CookieInsecure: true},
		}))
		go func() { _ = s.ui.Start() }()
		if err := waitHTTP(ctx, fmt.Sprintf("http://%s/", net.JoinHostPort(host, strconv.Itoa(opts.UIPort)))); err != nil {
			s.Stop()
			return nil, fmt.Errorf("dev server Web UI: %w", err)
		}
	}
	return s, nil
}

// prepare checks the ports, creates the SQLite store and the namespace, and
// returns the server's configuration. It settles opts' host (127.0.0.1 for
// none or localhost) and namespace (default).
func prepare(opts *Options) (*config.Config, error) {
	host, portStr, err := net.SplitHostPort(opts.Address)
	if err != nil {
		return nil, fmt.Errorf("dev server address %q: %w", opts.Address, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("dev server address %q: bad port", opts.Address)
	}
	if host == "" || host == "localhost" {
		host = "127.0.0.1"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	// Fail with a clear message before anything is created.
	if err := checkFree(host, port); err != nil {
		return nil, fmt.Errorf("dev server frontend: %w (is another Temporal server or worker --dev running?)", err)
	}
	if opts.UIPort > 0 {
		if err := checkFree(host, opts.UIPort); err != nil {
			return nil, fmt.Errorf("dev server Web UI: %w (set VULCAN_UI_PORT to another port, or 0 for no UI)", err)
		}
	}

	sqlCfg := &config.SQL{PluginName: sqliteplugin.PluginName, ConnectAttributes: map[string]string{}}
	if opts.DBFile == "" {
		sqlCfg.DatabaseName = fmt.Sprintf("vulcan-%d", time.Now().UnixNano())
		sqlCfg.ConnectAttributes["mode"] = "memory"
		sqlCfg.ConnectAttributes["cache"] = "shared"
	} else {
		if err := os.MkdirAll(filepath.Dir(opts.DBFile), 0o700); err != nil {
			return nil, fmt.Errorf("dev server state directory: %w", err)
		}
		sqlCfg.DatabaseName = opts.DBFile
		sqlCfg.ConnectAttributes["mode"] = "rwc"
		sqlCfg.ConnectAttributes["_journal_mode"] = "wal"
		sqlCfg.ConnectAttributes["_synchronous"] = "2"
		if _, err := os.Stat(opts.DBFile); errors.Is(err, os.ErrNotExist) {
			if err := sqliteschema.SetupSchema(sqlCfg); err != nil {
				return nil, fmt.Errorf("dev server: create schema in %s: %w", opts.DBFile, err)
			}
		} else if err := forgetMembers(opts.DBFile); err != nil {
			return nil, err
		}
	}
	if opts.DBFile == "" {
		if err := sqliteschema.SetupSchema(sqlCfg); err != nil {
			return nil, fmt.Errorf("dev server: create schema: %w", err)
		}
	}
	ns, err := sqliteschema.NewNamespaceConfig("active", opts.Namespace, false, nil)
	if err != nil {
		return nil, fmt.Errorf("dev server: namespace %s: %w", opts.Namespace, err)
	}
	// CreateNamespaces leaves existing namespaces alone.
	if err := sqliteschema.CreateNamespaces(sqlCfg, ns); err != nil {
		return nil, fmt.Errorf("dev server: create namespace %s: %w", opts.Namespace, err)
	}

	opts.Address = net.JoinHostPort(host, strconv.Itoa(port))
	return serverConfig(host, port, sqlCfg)
}

// newServer creates and starts the server. A fatal error the server reports
// while it starts (fatalLogger) is returned, not left to crash the process.
func newServer(cfg *config.Config, logger log.Logger) (srv temporal.Server, err error) {
	defer recoverFatal(&err)
	srv, err = temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("dev server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("dev server: start: %w", err)
	}
	return srv, nil
}

// Address is the frontend host:port.
func (s *Server) Address() string { return s.opts.Address }

// UIURL is the Web UI's address, or "" without UI.
func (s *Server) UIURL() string {
	if s.ui == nil {
		return ""
	}
	host, _, _ := net.SplitHostPort(s.opts.Address)
	return fmt.Sprintf("http://%s", net.JoinHostPort(host, strconv.Itoa(s.opts.UIPort)))
}

// Stop stops the UI and the server.
func (s *Server) Stop() {
	if s.ui != nil {
		s.ui.Stop()
	}
	_ = s.srv.Stop()
}

func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for time.Now().Before(deadline) {
		c, err := client.Dial(client.Options{HostPort: s.opts.Address, Namespace: s.opts.Namespace, Logger: quietLogger{}})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			if err == nil {
				_, err = c.WorkflowService().DescribeNamespace(ctx, describeNS(s.opts.Namespace))
			}
			if err == nil {
				// The history service answers too (after a restart it
				// takes a while to own its shard again): NotFound is the
				// healthy answer for a workflow that never existed.
				hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err = c.DescribeWorkflowExecution(hctx, "vulcan-readiness-probe", "")
				cancel()
				var nf *serviceerror.NotFound
				if errors.As(err, &nf) {
					err = nil
				}
			}
			c.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("dev server did not become ready: %w", last)
}

func serverConfig(host string, port int, sqlCfg *config.SQL) (*config.Config, error) {
	free := func() (int, error) { return FreePort(host) }
	svc := func(grpcPort int) (config.Service, error) {
		if grpcPort == 0 {
			p, err := free()
			if err != nil {
				return config.Service{}, err
			}
			grpcPort = p
		}
		mp, err := free()
		if err != nil {
			return config.Service{}, err
		}
		return config.Service{RPC: config.RPC{GRPCPort: grpcPort, MembershipPort: mp, BindOnIP: host}}, nil
	}
	services := map[string]config.Service{}
	for name, p := range map[string]int{"frontend": port, "history": 0, "matching": 0, "worker": 0} {
		s, err := svc(p)
		if err != nil {
			return nil, fmt.Errorf("dev server ports: %w", err)
		}
		services[name] = s
	}
	metricsPort, err := free()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	return &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: host},
			Metrics: &metrics.Config{Prometheus: &metrics.PrometheusConfig{
				ListenAddress: net.JoinHostPort(host, strconv.Itoa(metricsPort)), HandlerPath: "/metrics",
			}},
		},
		Persistence: config.Persistence{
			DefaultStore: sqliteplugin.PluginName, VisibilityStore: sqliteplugin.PluginName, NumHistoryShards: 1,
			DataStores: map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace: false, FailoverVersionIncrement: 10,
			MasterClusterName: "active", CurrentClusterName: "active",
			ClusterInformation: map[string]cluster.ClusterInformation{
				"active": {Enabled: true, InitialFailoverVersion: 1, RPCAddress: addr},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services:            services,
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		PublicClient: config.PublicClient{HostPort: addr},
	}, nil
}

func waitHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get(url) // #nosec G107 -- a loopback URL this process serves
		if err == nil {
			resp.Body.Close() // #nosec G104 -- closed on an error path or after use; the error that matters is returned
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not answering at %s: %w", url, last)
}

func describeNS(ns string) *workflowservice.DescribeNamespaceRequest {
	return &workflowservice.DescribeNamespaceRequest{Namespace: ns}
}

// quietLogger drops the SDK client's logs while the server warms up.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}

// forgetMembers removes the cluster membership rows a previous run left in
// the SQLite file. This server is one process, so every row is stale; left in
// place they point the new server at dead hosts until they expire (about a
// minute), and schedules and history calls fail meanwhile.
func forgetMembers(dbFile string) error {
	db, err := sql.Open("sqlite", "file:"+dbFile+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return fmt.Errorf("dev server: open %s: %w", dbFile, err)
	}
	defer db.Close()
	if _, err := db.Exec("DELETE FROM cluster_membership"); err != nil {
		return fmt.Errorf("dev server: reset membership in %s: %w (is another worker --dev using it?)", dbFile, err)
	}
	return nil
}
