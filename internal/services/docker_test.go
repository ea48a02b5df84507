package services_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/services"
	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

// Against the real Docker engine: only the labelled running containers of
// the project are stopped and started; a labelled stopped one stays stopped;
// an unlabelled one is untouched; health checks are waited for.
func TestDockerControllerWithRealContainers(t *testing.T) {
	c := testutil.Docker(t)
	project := testutil.RandomName("vulcantest")
	labelled := map[string]string{services.LabelStopDuringRestore: "true", services.LabelComposeProject: project}
	dirs := map[string]string{}
	mk := func(key string, labels map[string]string, start bool) string {
		dirs[key] = t.TempDir()
		os.Chmod(dirs[key], 0o777)
		return testutil.Standin(t, c, key, dirs[key], labels, start)
	}
	app := mk("app", labelled, true)
	worker := mk("worker", labelled, true)
	parked := mk("parked", labelled, false)
	other := mk("other", map[string]string{services.LabelComposeProject: project}, true)
	foreign := mk("foreign", map[string]string{services.LabelStopDuringRestore: "true", services.LabelComposeProject: "someone-else"}, true)

	d := &services.Docker{Engine: c, Label: services.LabelStopDuringRestore, Project: project,
		StopTimeout: 5 * time.Second, HealthTimeout: 30 * time.Second, Poll: 200 * time.Millisecond}
	ctx := context.Background()
	waitStarts(t, dirs["app"], 1)

	names, err := d.Running(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{app, worker}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("running %v, want %v", names, want)
	}
	if err := d.Stop(ctx, names); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if testutil.Running(t, c, n) {
			t.Errorf("%s still runs", n)
		}
	}
	if !testutil.Running(t, c, other) || !testutil.Running(t, c, foreign) {
		t.Fatal("an unselected container was stopped")
	}
	if err := d.Healthy(ctx, names); err == nil || !strings.Contains(err.Error(), app) {
		t.Fatalf("healthy while stopped: %v", err)
	}
	// Stopping again is no error (a retried step).
	if err := d.Stop(ctx, names); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, names); err != nil {
		t.Fatal(err)
	}
	if err := d.Healthy(ctx, names); err != nil {
		t.Fatal(err)
	}
	if testutil.Running(t, c, parked) || testutil.Starts(t, dirs["parked"]) != 0 {
		t.Fatal("the container that was stopped before was started")
	}
	if n := testutil.Starts(t, dirs["app"]); n != 2 {
		t.Fatalf("app started %d times, want 2", n)
	}
	if n := testutil.Starts(t, dirs["other"]); n != 1 {
		t.Fatalf("unlabelled container started %d times, want 1", n)
	}
}

// A container that does not become healthy is reported with its name and
// what its health check said.
func TestDockerUnhealthyIsNamed(t *testing.T) {
	c := testutil.Docker(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	os.WriteFile(filepath.Join(dir, "unhealthy"), nil, 0o644)
	project := testutil.RandomName("vulcantest")
	name := testutil.Standin(t, c, "sick", dir, map[string]string{services.LabelStopDuringRestore: "true", services.LabelComposeProject: project}, false)
	d := &services.Docker{Engine: c, Label: services.LabelStopDuringRestore, Project: project, HealthTimeout: 4 * time.Second, Poll: 200 * time.Millisecond}
	err := d.Start(context.Background(), []string{name})
	if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "not healthy") {
		t.Fatalf("want an error naming %s, got %v", name, err)
	}
	err = d.Stop(context.Background(), []string{"no-such-container-" + project})
	if err == nil || !strings.Contains(err.Error(), "no-such-container-"+project) {
		t.Fatalf("stop of a missing container: %v", err)
	}
}

func waitStarts(t *testing.T, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for testutil.Starts(t, dir) < n {
		if time.Now().After(deadline) {
			t.Fatalf("container never recorded %d starts", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
