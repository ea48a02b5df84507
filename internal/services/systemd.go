package services

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Systemctl runs systemctl with args and returns its combined output.
type Systemctl func(ctx context.Context, args ...string) ([]byte, error)

// RunSystemctl is the real systemctl.
func RunSystemctl(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "systemctl", args...) // #nosec G204 -- a fixed tool (pg_dump, psql, docker, systemctl) or the operator's own configured command; arguments are not a shell string
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

// Systemd stops and starts systemd units, for hosts without Docker.
type Systemd struct {
	// Units in stopping order (VULCAN_SYSTEMD_UNITS).
	Units []string
	// Run is systemctl (RunSystemctl, or a fake in tests).
	Run Systemctl
	// HealthTimeout bounds the wait for a started unit to be active.
	HealthTimeout time.Duration
	// Poll is the interval between checks (default 500 ms).
	Poll time.Duration
}

// Name implements Controller.
func (s *Systemd) Name() string { return "systemd" }

func (s *Systemd) active(ctx context.Context, unit string) (bool, string) {
	out, err := s.Run(ctx, "is-active", unit)
	state := strings.TrimSpace(string(out))
	return err == nil && state == "active", state
}

// Running implements Controller: the configured units that are active.
func (s *Systemd) Running(ctx context.Context) ([]string, error) {
	var names []string
	for _, u := range s.Units {
		if ok, _ := s.active(ctx, u); ok {
			names = append(names, u)
		}
	}
	return names, nil
}

// Stop implements Controller.
func (s *Systemd) Stop(ctx context.Context, names []string) error {
	for _, u := range names {
		if out, err := s.Run(ctx, "stop", u); err != nil {
			return fmt.Errorf("systemd: stop %s: %w: %s", u, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// Start implements Controller: reverse order, each active before the next.
func (s *Systemd) Start(ctx context.Context, names []string) error {
	for i := len(names) - 1; i >= 0; i-- {
		u := names[i]
		if out, err := s.Run(ctx, "start", u); err != nil {
			return fmt.Errorf("systemd: start %s: %w: %s", u, err, strings.TrimSpace(string(out)))
		}
		err := waitUntil(ctx, s.HealthTimeout, s.Poll, func() (bool, string, error) {
			ok, state := s.active(ctx, u)
			return ok, fmt.Sprintf("state %q", state), nil
		})
		if err != nil {
			return fmt.Errorf("systemd: %s %w", u, err)
		}
	}
	return nil
}

// Healthy implements Controller.
func (s *Systemd) Healthy(ctx context.Context, names []string) error {
	var bad []string
	for _, u := range names {
		if ok, state := s.active(ctx, u); !ok {
			bad = append(bad, fmt.Sprintf("%s is %q", u, state))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("systemd: %s", strings.Join(bad, ", "))
	}
	return nil
}
