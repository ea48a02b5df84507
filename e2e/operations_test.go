package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// One operation at a time: while a restore runs, a backup and a second
// restore are refused with the running workflow's name.
func TestOneOperationAtATime(t *testing.T) {
	s := newSystem(t)
	s.env = append(s.env, execServices(s.root)...)
	// Stopping the application takes a while, holding the restore in step 3.
	for i, e := range s.env {
		if strings.HasPrefix(e, "VULCAN_EXEC_STOP=") {
			s.env[i] = e + " && sleep 6"
		}
	}
	makeStorage(t, s.root, 1)
	os.WriteFile(filepath.Join(s.root, "app.running"), nil, 0o644)
	s.start()
	b := s.backup()

	var started struct {
		WorkflowID string `json:"workflow_id"`
	}
	if err := json.Unmarshal([]byte(s.mustStarter("restore", b.Result.Archive, "--yes", "--detach", "--json")), &started); err != nil {
		t.Fatal(err)
	}
	lockFile := filepath.Join(s.root, "backups", ".vulcan.lock")
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(lockFile)
		if strings.Contains(string(data), started.WorkflowID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restore never took the lock")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, args := range [][]string{{"backup"}, {"restore", b.Result.Archive, "--yes"}, {"cleanup", "--yes"}} {
		_, errOut, code := s.starter(args...)
		if code != 4 || !strings.Contains(errOut, started.WorkflowID) {
			t.Errorf("%s during a restore: exit %d, stderr %q; want exit 4 naming %s", args[0], code, errOut, started.WorkflowID)
		}
	}
	var st struct {
		Running []string `json:"running"`
	}
	json.Unmarshal([]byte(s.mustStarter("status", "--json")), &st)
	if len(st.Running) == 0 || !strings.Contains(strings.Join(st.Running, " "), started.WorkflowID) {
		t.Errorf("status does not show the running restore: %+v", st)
	}
	// Once the restore is done, a backup runs again.
	for time.Now().Before(deadline.Add(60 * time.Second)) {
		if _, err := os.Stat(lockFile); os.IsNotExist(err) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.backup()
}

// make run's promise: the Web UI answers, the schedule exists with the
// configured cron, and changing the cron updates it on the next start.
func TestWebUIAndSchedule(t *testing.T) {
	s := newSystem(t)
	port := freePort(t)
	s.env = append(s.env, fmt.Sprintf("VULCAN_UI_PORT=%d", port), "VULCAN_SCHEDULE=30 3 * * *")
	makeStorage(t, s.root, 1)
	s.start()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(string(body)), "<!doctype html") {
		t.Fatalf("web UI: %d %.200s", resp.StatusCode, body)
	}
	// The UI server reaches the embedded frontend through its API.
	resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/namespaces/default", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"default"`) {
		t.Fatalf("web UI API: %d %.300s", resp.StatusCode, body)
	}
	var d struct {
		Cron     string      `json:"cron"`
		Overlap  string      `json:"overlap"`
		TimeZone string      `json:"timezone"`
		NextRuns []time.Time `json:"next_runs"`
	}
	json.Unmarshal([]byte(s.mustStarter("schedule", "describe", "--json")), &d)
	if d.Cron != "30 3 * * *" || d.TimeZone != "UTC" || d.Overlap != "skip" || len(d.NextRuns) == 0 || d.NextRuns[0].UTC().Hour() != 3 || d.NextRuns[0].UTC().Minute() != 30 {
		t.Fatalf("schedule %+v", d)
	}
	// Trigger runs a scheduled backup now.
	s.mustStarter("schedule", "trigger")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var list struct {
			Backups []struct {
				Kind string `json:"kind"`
			} `json:"backups"`
		}
		json.Unmarshal([]byte(s.mustStarter("list", "--json")), &list)
		if len(list.Backups) == 1 && list.Backups[0].Kind == "scheduled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("triggered backup never appeared: %+v", list)
		}
		time.Sleep(300 * time.Millisecond)
	}
	s.mustStarter("schedule", "pause")
	if out := s.mustStarter("schedule", "describe"); !strings.Contains(out, "PAUSED") {
		t.Fatalf("after pause: %s", out)
	}
	s.mustStarter("schedule", "unpause")

	// A new cron is applied when the worker starts again (history is kept).
	s.stop()
	s.setEnv("VULCAN_SCHEDULE", "15 1 * * *")
	s.start()
	if !strings.Contains(s.logs.String(), "nightly schedule updated") {
		t.Fatalf("schedule not updated:\n%s", s.logs.String())
	}
	json.Unmarshal([]byte(s.mustStarter("schedule", "describe", "--json")), &d)
	if d.Cron != "15 1 * * *" {
		t.Fatalf("cron %q after restart", d.Cron)
	}
	var list struct {
		Backups []json.RawMessage `json:"backups"`
	}
	json.Unmarshal([]byte(s.mustStarter("list", "--json")), &list)
	if len(list.Backups) != 1 {
		t.Fatalf("backups after restart: %d", len(list.Backups))
	}
}

// Ctrl-C in a following `starter restore` asks, and answered yes cancels
// the restore, which is rolled back: the files and rows are as before, the
// application runs, and the starter says it was cancelled.
func TestCtrlCCancelsTheRestore(t *testing.T) {
	f := newCrashFixture(t, 300)
	s := f.s
	starting := filepath.Join(s.root, "starting")
	s.setEnv("VULCAN_EXEC_START", "touch "+starting+" && sleep 3 && "+execStart(s))
	s.stop()
	s.start()
	cmd := exec.Command(starterBin, "restore", f.backup.Result.Archive, "--yes")
	cmd.Dir, cmd.Env = s.root, s.environ()
	cmd.Stdin = strings.NewReader("y\n")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "step 6 to begin", func() bool {
		_, err := os.Stat(starting)
		return err == nil
	})
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 1 || !strings.Contains(errOut.String(), "Cancel the restore") || !strings.Contains(errOut.String(), "restore cancelled") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut.String())
	}
	f.assertWhole(t, false)
}
