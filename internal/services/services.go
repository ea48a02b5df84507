// Package services stops and starts the application's services around a
// restore. A Controller remembers nothing: Running names the services that
// run, the caller keeps that list (in workflow state, so a crash cannot lose
// it), stops exactly those and later starts exactly those again.
package services

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Controller stops, starts and checks the application's services.
type Controller interface {
	// Name identifies the controller in logs and output.
	Name() string
	// Running returns the names of the services that run now.
	Running(ctx context.Context) ([]string, error)
	// Stop stops the named services; stopping a stopped one is no error.
	Stop(ctx context.Context, names []string) error
	// Start starts the named services (in reverse order of stopping) and
	// waits until they are healthy.
	Start(ctx context.Context, names []string) error
	// Healthy checks that the named services are up.
	Healthy(ctx context.Context, names []string) error
}

// Config selects and configures a controller.
type Config struct {
	// Kind is none, exec, docker or systemd.
	Kind string
	// Exec commands, run with sh -c.
	ExecStop, ExecStart, ExecHealth, ExecStatus string
	// HealthTimeout bounds the wait for health after a start.
	HealthTimeout time.Duration
	// ComposeProject limits the docker controller to one compose project.
	ComposeProject string
	// DockerStopTimeout is how long Docker waits before killing a container.
	DockerStopTimeout time.Duration
	// SystemdUnits are the units of the systemd controller.
	SystemdUnits []string
	// Docker is the engine for the docker controllers; nil means connect
	// to DOCKER_HOST or the default socket.
	Docker DockerEngine
}

// New returns the controller cfg names.
func New(cfg Config) (Controller, error) {
	switch cfg.Kind {
	case "", "none":
		return None{}, nil
	case "exec":
		if cfg.ExecStop == "" || cfg.ExecStart == "" {
			return nil, fmt.Errorf("services: VULCAN_SERVICES=exec needs VULCAN_EXEC_STOP and VULCAN_EXEC_START")
		}
		return &Exec{cfg: cfg}, nil
	case "docker":
		return cfg.docker(LabelStopDuringRestore)
	case "systemd":
		if len(cfg.SystemdUnits) == 0 {
			return nil, fmt.Errorf("services: VULCAN_SERVICES=systemd needs VULCAN_SYSTEMD_UNITS")
		}
		return &Systemd{Units: cfg.SystemdUnits, Run: RunSystemctl, HealthTimeout: cfg.HealthTimeout}, nil
	default:
		return nil, fmt.Errorf("services: unknown VULCAN_SERVICES %q (want none, exec, docker or systemd)", cfg.Kind)
	}
}

// NewForBackup returns the controller for the containers to stop during a
// backup (label vulcan.stop-during-backup=true): docker only; every other
// kind has none.
func NewForBackup(cfg Config) (Controller, error) {
	if cfg.Kind != "docker" {
		return None{}, nil
	}
	return cfg.docker(LabelStopDuringBackup)
}

func (cfg Config) docker(label string) (Controller, error) {
	engine := cfg.Docker
	if engine == nil {
		c, err := NewDockerClient()
		if err != nil {
			return nil, err
		}
		engine = c
	}
	return &Docker{Engine: engine, Label: label, Project: cfg.ComposeProject, StopTimeout: cfg.DockerStopTimeout, HealthTimeout: cfg.HealthTimeout}, nil
}

// None controls nothing: for setups where the operator stops the application.
type None struct{}

// Name implements Controller.
func (None) Name() string { return "none" }

// Running implements Controller.
func (None) Running(context.Context) ([]string, error) { return nil, nil }

// Stop implements Controller.
func (None) Stop(context.Context, []string) error { return nil }

// Start implements Controller.
func (None) Start(context.Context, []string) error { return nil }

// Healthy implements Controller.
func (None) Healthy(context.Context, []string) error { return nil }

// ExecService is the one service name the exec controller reports.
const ExecService = "app"

// Exec runs operator commands: VULCAN_EXEC_STATUS (exit 0 when the
// application runs; unset means it always runs), VULCAN_EXEC_STOP,
// VULCAN_EXEC_START and VULCAN_EXEC_HEALTH (exit 0 when healthy; unset
// means healthy once started).
type Exec struct{ cfg Config }

// Name implements Controller.
func (e *Exec) Name() string { return "exec" }

// Running implements Controller: without a status command the application
// is taken to be running.
func (e *Exec) Running(ctx context.Context) ([]string, error) {
	if e.cfg.ExecStatus != "" {
		if err := run(ctx, "status", e.cfg.ExecStatus); err != nil {
			return nil, nil // not running: nothing to stop, nothing to start later
		}
	}
	return []string{ExecService}, nil
}

// Stop implements Controller.
func (e *Exec) Stop(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	return run(ctx, "stop", e.cfg.ExecStop)
}

// Start implements Controller.
func (e *Exec) Start(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if err := run(ctx, "start", e.cfg.ExecStart); err != nil {
		return err
	}
	return e.waitHealthy(ctx)
}

// Healthy implements Controller.
func (e *Exec) Healthy(ctx context.Context, names []string) error {
	if len(names) == 0 || e.cfg.ExecHealth == "" {
		return nil
	}
	return run(ctx, "health", e.cfg.ExecHealth)
}

func (e *Exec) waitHealthy(ctx context.Context) error {
	if e.cfg.ExecHealth == "" {
		return nil
	}
	err := waitUntil(ctx, e.cfg.HealthTimeout, time.Second, func() (bool, string, error) {
		if err := run(ctx, "health", e.cfg.ExecHealth); err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	if err != nil {
		return fmt.Errorf("application %w", err)
	}
	return nil
}

func run(ctx context.Context, what, command string) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", command) // #nosec G204 -- a fixed tool (pg_dump, psql, docker, systemctl) or the operator's own configured command; arguments are not a shell string
	cmd.Env = os.Environ()
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 2000 {
			msg = msg[:2000] + "..."
		}
		return fmt.Errorf("%s command %q: %w: %s", what, command, err, msg)
	}
	return nil
}

// waitUntil polls check every poll until it reports ready, the timeout
// passes (the error then carries check's last reason), or ctx ends.
func waitUntil(ctx context.Context, timeout, poll time.Duration, check func() (ready bool, why string, err error)) error {
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	for {
		ok, why, err := check()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy %s after start: %s", timeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}
