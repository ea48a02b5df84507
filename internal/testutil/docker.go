package testutil

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
)

// StandinImage is the tag of the stand-in application image.
const StandinImage = "vulcan-standin:test"

// Docker connects to the Docker engine, skipping (or failing in CI) when none
// answers.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(client.FromEnv)
	if err != nil {
		Need(t, "no Docker client: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx, client.PingOptions{}); err != nil {
		Need(t, "no Docker engine reachable: "+err.Error())
	}
	t.Cleanup(func() { c.Close() }) // #nosec G104 -- closed on an error path or after use; the error that matters is returned
	return c
}

var (
	standinOnce sync.Once
	standinErr  error
)

// BuildStandin builds the stand-in image FROM scratch from a static Go
// binary (no image is pulled), once per test process.
func BuildStandin(t testing.TB, c *client.Client) string {
	t.Helper()
	standinOnce.Do(func() { standinErr = buildStandin(RepoRoot(t), c) })
	if standinErr != nil {
		t.Fatalf("build stand-in image: %v", standinErr)
	}
	return StandinImage
}

func buildStandin(repo string, c *client.Client) error {
	dir, err := os.MkdirTemp("", "standin")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "app")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./internal/testutil/standin") // #nosec G204 -- a fixed tool (pg_dump, psql, docker, systemctl) or the operator's own configured command; arguments are not a shell string
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build standin: %v\n%s", err, out)
	}
	binData, err := os.ReadFile(bin) // #nosec G304 -- a test's own files
	if err != nil {
		return err
	}
	dockerfile := "FROM scratch\nCOPY app /app\nHEALTHCHECK --interval=1s --timeout=2s --retries=1 CMD [\"/app\", \"-health\"]\nENTRYPOINT [\"/app\"]\n"
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for name, f := range map[string]struct {
		data []byte
		mode int64
	}{"Dockerfile": {[]byte(dockerfile), 0o644}, "app": {binData, 0o755}} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}) // #nosec G104 -- an in-memory tar for a test image: cannot fail
		tw.Write(f.data)                                                                                       // #nosec G104 -- an in-memory tar for a test image: cannot fail
	}
	tw.Close() // #nosec G104 -- an in-memory tar for a test image: cannot fail
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := c.ImageBuild(ctx, &ctxTar, client.ImageBuildOptions{Tags: []string{StandinImage}, Remove: true, ForceRemove: true})
	if err != nil {
		return err
	}
	defer res.Body.Close()
	// The build reports errors in its JSON stream.
	dec := json.NewDecoder(res.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		if msg.Error != "" {
			return fmt.Errorf("docker build: %s", msg.Error)
		}
	}
	return nil
}

// Standin creates a stand-in container named name (with a random suffix)
// with the labels, its /data bind-mounted from dataDir, started if start.
// It is removed when the test ends. It returns the container name.
func Standin(t testing.TB, c *client.Client, name, dataDir string, labels map[string]string, start bool) string {
	t.Helper()
	image := BuildStandin(t, c)
	name = RandomName(name + "-")
	ctx := context.Background()
	_, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   name,
		Config: &container.Config{Image: image, Labels: labels, StopSignal: "SIGTERM"},
		HostConfig: &container.HostConfig{
			Mounts: []mount.Mount{{Type: mount.TypeBind, Source: dataDir, Target: "/data"}},
		},
	})
	if err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	t.Cleanup(func() {
		c.ContainerRemove(context.Background(), name, client.ContainerRemoveOptions{Force: true}) // #nosec G104 -- best-effort clean-up of a test container
	})
	if start {
		if _, err := c.ContainerStart(ctx, name, client.ContainerStartOptions{}); err != nil {
			t.Fatalf("start container %s: %v", name, err)
		}
	}
	return name
}

// Running reports whether the container runs.
func Running(t testing.TB, c *client.Client, name string) bool {
	t.Helper()
	res, err := c.ContainerInspect(context.Background(), name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return res.Container.State != nil && res.Container.State.Running
}

// Starts counts the starts recorded in dataDir/starts.log.
func Starts(t testing.TB, dataDir string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dataDir, "starts.log")) // #nosec G304 -- a test's own files
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "start ")
}
