package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/activities"
	"github.com/project-vulcan/vulcan-backup/internal/lock"
	"github.com/project-vulcan/vulcan-backup/internal/services"
	"github.com/project-vulcan/vulcan-backup/internal/store"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// cli runs the starter in-process with a clean environment rooted at root.
func cli(t *testing.T, root string, args ...string) (string, string, int) {
	t.Helper()
	for _, k := range []string{"TEMPORAL_ADDRESS", "VULCAN_BACKUP_DIR", "DATABASE_URL", "VULCAN_UI_URL"} {
		t.Setenv(k, "")
	}
	t.Setenv("VULCAN_ROOT", root)
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), code
}

// makeBackup writes a real backup under root through the activities.
func makeBackup(t *testing.T, root string) workflows.BackupResult {
	t.Helper()
	os.MkdirAll(filepath.Join(root, "storage"), 0o755)
	os.WriteFile(filepath.Join(root, "storage", "a.txt"), []byte("hello"), 0o644)
	a := &activities.Activities{Root: root, Paths: []string{"storage"}, Backups: store.Dir{Path: filepath.Join(root, "backups")},
		RetentionDays: 7, Services: services.None{}}
	ctx := context.Background()
	plan, err := a.PrepareBackup(ctx, workflows.BackupPlan{Kind: workflows.KindManual, StartedAt: time.Date(2025, 12, 23, 2, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	a.DumpDatabase(ctx, plan)
	if _, err := a.ArchiveStorage(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if _, err := a.VerifyBackup(ctx, plan); err != nil {
		t.Fatal(err)
	}
	res, err := a.CommitBackup(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestVerifyListInfoWithoutTemporal(t *testing.T) {
	root := t.TempDir()
	b := makeBackup(t, root)
	out, errOut, code := cli(t, root, "verify", b.ID)
	if code != ExitOK || !strings.Contains(out, "OK: backup 20251223_020000 is intact") {
		t.Fatalf("verify: %d %q %q", code, out, errOut)
	}
	out, _, code = cli(t, root, "list", "--json")
	var list struct {
		Backups []store.Info `json:"backups"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != 0 || len(list.Backups) != 1 || !list.Backups[0].Verified {
		t.Fatalf("list: %d %q %v", code, out, err)
	}
	out, _, code = cli(t, root, "info", b.Archive)
	if code != 0 || !strings.Contains(out, "DATABASE_URL is not set") || !strings.Contains(out, "files:       1") ||
		!strings.Contains(out, "drilled:     never") {
		t.Fatalf("info: %d %q", code, out)
	}
	// Once drilled, info says when, how it went and against what objective.
	os.MkdirAll(filepath.Join(root, "backups", "drills"), 0o700)
	for id, rep := range map[string]string{
		"20251224_030000": `{"drill_id": "20251224_030000", "backup_id": "20251223_020000", "started_at": "2025-12-24T03:00:00Z", "passed": true, "total_seconds": 700, "within_rto": false, "rto_seconds": 600}`,
		"20251201_030000": `{"drill_id": "20251201_030000", "backup_id": "20251223_020000", "started_at": "2025-12-01T03:00:00Z", "passed": false, "error": "older"}`,
	} {
		os.WriteFile(filepath.Join(root, "backups", "drills", id+".json"), []byte(rep), 0o600)
	}
	out, _, _ = cli(t, root, "info", b.Archive)
	if !strings.Contains(out, "drilled:     2025-12-24 03:00 UTC, drill 20251224_030000 passed in 700 s, OVER the recovery time objective of 600 s") {
		t.Fatalf("info of a drilled backup:\n%s", out)
	}

	// One flipped byte: exit 3, naming the checksum.
	p := filepath.Join(root, b.Archive)
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 1
	os.WriteFile(p, data, 0o600)
	_, errOut, code = cli(t, root, "verify", b.ID, "--json")
	if code != ExitIntegrity || !strings.Contains(errOut, "checksum mismatch") {
		t.Fatalf("verify of a flipped archive: %d %q", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	root := t.TempDir()
	for _, args := range [][]string{{"verify"}, {"restore"}, {"backup", "--no-such-flag"}, {"info", "a", "b"}, {"schedule"},
		{"restore", "--undo", "20250101_000000", "x.tar.gz"}, {"restore", "--undo", "20250101_000000", "--dry-run"}} {
		if _, errOut, code := cli(t, root, args...); code != ExitUsage {
			t.Errorf("%v: exit %d (%q), want %d", args, code, errOut, ExitUsage)
		}
	}
	if _, errOut, code := cli(t, root, "verify", "backups/nope.tar.gz"); code != ExitUsage || !strings.Contains(errOut, "nope.tar.gz") {
		t.Errorf("missing archive: %d %q", code, errOut)
	}
}

func TestTemporalUnreachable(t *testing.T) {
	root := t.TempDir()
	t.Setenv("TEMPORAL_ADDRESS", "")
	var out, errOut bytes.Buffer
	os.Setenv("VULCAN_ROOT", root)
	code := run(context.Background(), []string{"backup", "--address", "127.0.0.1:1"}, strings.NewReader(""), &out, &errOut)
	if code != ExitUnreachable || !strings.Contains(errOut.String(), "cannot reach Temporal at 127.0.0.1:1") {
		t.Fatalf("exit %d %q", code, errOut.String())
	}
}

func TestRestoreNeedsConfirmation(t *testing.T) {
	root := t.TempDir()
	_, errOut, code := cli(t, root, "restore", "x.tar.gz")
	if code != ExitUsage || !strings.Contains(errOut, "not confirmed") {
		t.Fatalf("exit %d %q", code, errOut)
	}
	_, errOut, code = cli(t, root, "restore", "--undo", "20250101_000000")
	if code != ExitUsage || !strings.Contains(errOut, "not confirmed") {
		t.Fatalf("undo: exit %d %q", code, errOut)
	}
}

// status says when the lock is held by a restore whose rollback did not
// complete, and what to do (without Temporal: it reads the lock file).
func TestStatusShowsAnIncompleteRollback(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "backups")
	if err := lock.Acquire(dir, lock.Holder{Operation: "restore", WorkflowID: "vulcan-restore-x", State: lock.StateIncomplete},
		func(lock.Holder) (bool, error) { return true, nil }); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	out, _, _ := cli(t, root, "status")
	if !strings.Contains(out, "ROLLBACK INCOMPLETE") || !strings.Contains(out, "starter retry vulcan-restore-x") {
		t.Fatalf("status:\n%s", out)
	}
}
