package services

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Docker labels that select the containers to stop.
const (
	// LabelStopDuringRestore marks a container to stop while a restore runs.
	LabelStopDuringRestore = "vulcan.stop-during-restore"
	// LabelStopDuringBackup marks a container to stop for the seconds its
	// files are archived (stores that are unsafe to copy live).
	LabelStopDuringBackup = "vulcan.stop-during-backup"
	// LabelComposeProject is set by docker compose on every container.
	LabelComposeProject = "com.docker.compose.project"
)

// DockerEngine is the part of the Docker Engine API the controller uses;
// *client.Client implements it.
type DockerEngine interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerStop(ctx context.Context, id string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerStart(ctx context.Context, id string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
}

// Docker stops and starts the running containers that carry Label (set to
// "true"), optionally only those of one compose project.
type Docker struct {
	Engine DockerEngine
	// Label selects the containers, e.g. LabelStopDuringRestore.
	Label string
	// Project limits the selection to one compose project, if set.
	Project string
	// StopTimeout is how long Docker waits before killing a container.
	StopTimeout time.Duration
	// HealthTimeout bounds the wait for a started container to be healthy.
	HealthTimeout time.Duration
	// Poll is the interval between health checks (default 500 ms).
	Poll time.Duration
}

// NewDockerClient connects to DOCKER_HOST or the default socket.
func NewDockerClient() (*client.Client, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	return c, nil
}

// Name implements Controller.
func (d *Docker) Name() string { return "docker" }

// Running implements Controller: the names of the selected running
// containers, sorted, in the order they are stopped.
func (d *Docker) Running(ctx context.Context) ([]string, error) {
	f := make(client.Filters).Add("label", d.Label+"=true").Add("status", "running")
	if d.Project != "" {
		f.Add("label", LabelComposeProject+"="+d.Project)
	}
	res, err := d.Engine.ContainerList(ctx, client.ContainerListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers labelled %s=true: %w", d.Label, err)
	}
	var names []string
	for _, c := range res.Items {
		names = append(names, containerName(c))
	}
	sort.Strings(names)
	return names, nil
}

func containerName(c container.Summary) string {
	if len(c.Names) > 0 {
		return strings.TrimPrefix(c.Names[0], "/")
	}
	return c.ID
}

// Stop implements Controller. Stopping a stopped container is no error.
func (d *Docker) Stop(ctx context.Context, names []string) error {
	timeout := int(d.StopTimeout.Seconds())
	if d.StopTimeout <= 0 {
		timeout = 30
	}
	for _, n := range names {
		if _, err := d.Engine.ContainerStop(ctx, n, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
			return fmt.Errorf("docker: stop container %s: %w", n, err)
		}
	}
	return nil
}

// Start implements Controller: in reverse order of stopping, each one
// healthy (its health check, or running without one) before the next.
func (d *Docker) Start(ctx context.Context, names []string) error {
	for i := len(names) - 1; i >= 0; i-- {
		n := names[i]
		if _, err := d.Engine.ContainerStart(ctx, n, client.ContainerStartOptions{}); err != nil {
			return fmt.Errorf("docker: start container %s: %w", n, err)
		}
		if err := d.waitHealthy(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// Healthy implements Controller.
func (d *Docker) Healthy(ctx context.Context, names []string) error {
	var errs []error
	for _, n := range names {
		if ok, why, err := d.health(ctx, n); err != nil {
			errs = append(errs, err)
		} else if !ok {
			errs = append(errs, fmt.Errorf("docker: container %s is %s", n, why))
		}
	}
	return errors.Join(errs...)
}

func (d *Docker) health(ctx context.Context, name string) (bool, string, error) {
	res, err := d.Engine.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return false, "", fmt.Errorf("docker: inspect container %s: %w", name, err)
	}
	st := res.Container.State
	switch {
	case st == nil:
		return false, "in an unknown state", nil
	case !st.Running:
		why := string(st.Status)
		if st.Error != "" {
			why += ": " + st.Error
		}
		return false, why + fmt.Sprintf(" (exit code %d)", st.ExitCode), nil
	case st.Health != nil && st.Health.Status != container.Healthy:
		why := "running but " + string(st.Health.Status)
		if n := len(st.Health.Log); n > 0 && st.Health.Log[n-1] != nil {
			why += ": " + strings.TrimSpace(st.Health.Log[n-1].Output)
		}
		return false, why, nil
	}
	return true, "", nil
}

func (d *Docker) waitHealthy(ctx context.Context, name string) error {
	err := waitUntil(ctx, d.HealthTimeout, d.Poll, func() (bool, string, error) { return d.health(ctx, name) })
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("docker: container %s %w", name, err)
	}
	return err
}
