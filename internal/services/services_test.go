package services

import (
	"context"
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
