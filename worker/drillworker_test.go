package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/lowprio"
)

// TestMain stands in for the drill worker when the supervisor under test
// starts this binary with --drill-worker: it writes its pid and priority
// to DRILL_STANDIN_DIR and waits for SIGTERM.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DRILL_STANDIN_DIR"); dir != "" && slices.Contains(os.Args, "--"+drillWorkerFlag) {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		nice, _, _, _ := lowprio.Of(os.Getpid())
		line := strconv.Itoa(os.Getpid()) + " " + strconv.Itoa(nice) + "\n"
		f, err := os.OpenFile(filepath.Join(dir, "started"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			_, _ = f.WriteString(line)
			_ = f.Close()
		}
		<-term
		_ = os.WriteFile(filepath.Join(dir, "stopped-"+strconv.Itoa(os.Getpid())), nil, 0o600)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startedDrillWorkers reads what the stand-ins wrote: pid and niceness of
// each start.
func startedDrillWorkers(t *testing.T, dir string) [][2]int {
	t.Helper()
	data, _ := os.ReadFile(filepath.Join(dir, "started"))
	var out [][2]int
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			pid, _ := strconv.Atoi(f[0])
			nice, _ := strconv.Atoi(f[1])
			out = append(out, [2]int{pid, nice})
		}
	}
	return out
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// The worker runs its drill worker at nice 19, starts it again when it
// dies, and on shutdown asks it to stop (SIGTERM) and waits for it.
func TestDrillWorkerIsSupervised(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DRILL_STANDIN_DIR", dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := superviseDrillWorker(ctx, []string{"--" + drillWorkerFlag}, nil, nil, "q", slog.Default())
	waitUntil(t, "the drill worker", func() bool { return len(startedDrillWorkers(t, dir)) == 1 })
	first := startedDrillWorkers(t, dir)[0]
	if first[1] != lowprio.Nice {
		t.Fatalf("the drill worker runs at nice %d, want %d", first[1], lowprio.Nice)
	}
	if err := syscall.Kill(first[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the drill worker started again", func() bool { return len(startedDrillWorkers(t, dir)) == 2 })
	second := startedDrillWorkers(t, dir)[1]
	if second[0] == first[0] || second[1] != lowprio.Nice {
		t.Fatalf("restarted drill worker %v after %v", second, first)
	}
	cancel()
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drillWorkerStop + 5*time.Second):
		t.Fatal("the supervisor did not end with its context")
	}
	if _, err := os.Stat(filepath.Join(dir, "stopped-"+strconv.Itoa(second[0]))); err != nil {
		t.Fatalf("the drill worker was not stopped by SIGTERM: %v", err)
	}
	if got := len(startedDrillWorkers(t, dir)); got != 2 {
		t.Fatalf("%d drill workers started, want 2 (none after shutdown)", got)
	}
}
