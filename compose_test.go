package vulcanbackup_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// The production stack parses with the real compose loader, and the worker
// gets what DESIGN.md §1 and the restore need.
func TestComposeStack(t *testing.T) {
	t.Setenv("VULCAN_API_TOKEN", "test-token")
	opts, err := cli.NewProjectOptions([]string{"docker-compose.yml"}, cli.WithOsEnv, cli.WithName("vulcan"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	for _, name := range []string{"temporal", "temporal-db", "temporal-ui", "app-db", "app", "worker"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	w := p.Services["worker"]
	env := map[string]string{}
	for k, v := range w.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	for k, want := range map[string]string{
		"TEMPORAL_ADDRESS": "temporal:7233", "VULCAN_ROOT": "/app", "VULCAN_PATHS": "storage",
		"VULCAN_BACKUP_DIR": "backups", "VULCAN_SERVICES": "docker", "VULCAN_COMPOSE_PROJECT": p.Name,
		"VULCAN_SCHEDULE": "0 2 * * *", "VULCAN_RETENTION_DAYS": "7", "TEMPORAL_NAMESPACE": "default", "VULCAN_TASK_QUEUE": "vulcan-backup",
		"VULCAN_API_ADDR": "0.0.0.0:8000", "VULCAN_API_TOKEN": "test-token",
	} {
		if env[k] != want {
			t.Errorf("worker %s = %q, want %q", k, env[k], want)
		}
	}
	if !strings.HasPrefix(env["DATABASE_URL"], "postgres://") || !strings.Contains(env["DATABASE_URL"], "@app-db:5432/") {
		t.Errorf("worker DATABASE_URL %q does not point at app-db", env["DATABASE_URL"])
	}
	var root, socket bool
	for _, v := range w.Volumes {
		switch v.Target {
		case "/app":
			root = v.Type == types.VolumeTypeBind
		case "/var/run/docker.sock":
			socket = true
		case "/app/storage", "/app/backups":
			t.Errorf("worker mounts %s itself: a restore renames storage/, so mount the root", v.Target)
		}
	}
	if !root || !socket {
		t.Errorf("worker volumes %+v: want the root bound at /app and the Docker socket", w.Volumes)
	}
	// The worker runs unprivileged, with the Docker socket's group.
	if u := strings.Split(w.User, ":")[0]; u == "" || u == "0" || u == "root" {
		t.Errorf("the worker runs as %q: want an unprivileged user", w.User)
	}
	if len(w.GroupAdd) == 0 {
		t.Error("the worker is not given the Docker socket's group (group_add)")
	}
	if !regexp.MustCompile(`(?m)^USER [1-9][0-9]*`).Match(mustRead(t, "Dockerfile")) {
		t.Error("the image does not switch to an unprivileged USER")
	}
	if p.Services["app"].Labels["vulcan.stop-during-restore"] != "true" {
		t.Error("the example app is not labelled vulcan.stop-during-restore=true")
	}
	for _, l := range []string{"vulcan.stop-during-restore", "vulcan.stop-during-backup"} {
		if _, ok := w.Labels[l]; ok {
			t.Errorf("the worker must not stop itself (%s)", l)
		}
	}
	// pg_dump in the image must match the application database's major version.
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	client := regexp.MustCompile(`postgresql-client-(\d+)`).FindStringSubmatch(string(dockerfile))
	server := regexp.MustCompile(`^postgres:(\d+)`).FindStringSubmatch(p.Services["app-db"].Image)
	if client == nil || server == nil || client[1] != server[1] {
		t.Errorf("Dockerfile client %v vs app-db image %q: major versions must match", client, p.Services["app-db"].Image)
	}
}

// Without a token the stack refuses to load: the API would listen beyond loopback.
func TestComposeStackNeedsAToken(t *testing.T) {
	t.Setenv("VULCAN_API_TOKEN", "")
	opts, err := cli.NewProjectOptions([]string{"docker-compose.yml"}, cli.WithOsEnv, cli.WithName("vulcan"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opts.LoadProject(context.Background()); err == nil || !strings.Contains(err.Error(), "VULCAN_API_TOKEN") {
		t.Fatalf("want an error naming VULCAN_API_TOKEN, got %v", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
