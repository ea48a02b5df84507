package services

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExecController(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "running")
	log := filepath.Join(dir, "log")
	c, err := New(Config{
		Kind:          "exec",
		ExecStatus:    "test -f " + flag,
		ExecStop:      "echo stop >> " + log + " && rm -f " + flag,
		ExecStart:     "echo start >> " + log + " && touch " + flag,
		ExecHealth:    "test -f " + flag,
		HealthTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Not running: nothing to stop, nothing to start later.
	names, err := c.Running(ctx)
	if err != nil || len(names) != 0 {
		t.Fatalf("running while stopped: %v %v", names, err)
	}
	os.WriteFile(flag, nil, 0o644)
	names, err = c.Running(ctx)
	if err != nil || len(names) != 1 {
		t.Fatalf("running: %v %v", names, err)
	}
	if err := c.Stop(ctx, names); err != nil {
		t.Fatal(err)
	}
	if err := c.Healthy(ctx, names); err == nil {
		t.Fatal("healthy while stopped")
	}
	if err := c.Start(ctx, names); err != nil {
		t.Fatal(err)
	}
	if err := c.Healthy(ctx, names); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(log); string(b) != "stop\nstart\n" {
		t.Fatalf("log %q", b)
	}
	// Start and Stop of nothing run no command.
	if err := c.Stop(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(log); string(b) != "stop\nstart\n" {
		t.Fatalf("log after stopping nothing %q", b)
	}
}

func TestExecFailuresSayWhat(t *testing.T) {
	c, _ := New(Config{Kind: "exec", ExecStop: "echo cannot stop >&2; exit 3", ExecStart: "true", ExecHealth: "false", HealthTimeout: time.Second})
	err := c.Stop(context.Background(), []string{ExecService})
	if err == nil || !strings.Contains(err.Error(), "cannot stop") || !strings.Contains(err.Error(), "stop command") {
		t.Fatalf("stop error %v", err)
	}
	err = c.Start(context.Background(), []string{ExecService})
	if err == nil || !strings.Contains(err.Error(), "not healthy") {
		t.Fatalf("start error %v", err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Kind: "exec"}, {Kind: "kubernetes"}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	if c, err := New(Config{}); err != nil || c.Name() != "none" {
		t.Fatalf("default: %v %v", c, err)
	}
}

// fakeSystemctl keeps unit states in a map, as systemctl would.
type fakeSystemctl struct {
	active map[string]bool
	calls  []string
	fail   string
}

func (f *fakeSystemctl) run(_ context.Context, args ...string) ([]byte, error) {
	f.calls = append(f.calls, strings.Join(args, " "))
	verb, unit := args[0], args[1]
	if unit == f.fail && verb != "is-active" {
		return []byte("Job for " + unit + " failed."), errors.New("exit status 1")
	}
	switch verb {
	case "is-active":
		if f.active[unit] {
			return []byte("active\n"), nil
		}
		return []byte("inactive\n"), errors.New("exit status 3")
	case "stop":
		f.active[unit] = false
	case "start":
		f.active[unit] = true
	}
	return nil, nil
}

func TestSystemdController(t *testing.T) {
	f := &fakeSystemctl{active: map[string]bool{"vulcan-web.service": true, "vulcan-worker.service": true}}
	s := &Systemd{Units: []string{"vulcan-web.service", "chroma.service", "vulcan-worker.service"}, Run: f.run, Poll: time.Millisecond}
	ctx := context.Background()
	names, _ := s.Running(ctx)
	if strings.Join(names, ",") != "vulcan-web.service,vulcan-worker.service" {
		t.Fatalf("running %v", names)
	}
	if err := s.Stop(ctx, names); err != nil {
		t.Fatal(err)
	}
	if err := s.Healthy(ctx, names); err == nil {
		t.Fatal("healthy while stopped")
	}
	f.calls = nil
	if err := s.Start(ctx, names); err != nil {
		t.Fatal(err)
	}
	// Reverse order, and the inactive unit is left alone.
	if got := strings.Join(f.calls, "; "); got != "start vulcan-worker.service; is-active vulcan-worker.service; start vulcan-web.service; is-active vulcan-web.service" {
		t.Fatalf("calls %s", got)
	}
	if f.active["chroma.service"] {
		t.Fatal("a unit that was not running was started")
	}
	f.fail = "vulcan-web.service"
	err := s.Stop(ctx, []string{"vulcan-web.service"})
	if err == nil || !strings.Contains(err.Error(), "vulcan-web.service") || !strings.Contains(err.Error(), "Job for") {
		t.Fatalf("stop error %v", err)
	}
}
