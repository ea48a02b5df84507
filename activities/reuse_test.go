package activities

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/workflows"
)

// reuseTree adds enough small files and one large file for several members.
func reuseTree(t *testing.T, a *Activities) int64 {
	t.Helper()
	var total int64
	for i := range 2000 {
		p := filepath.Join(a.Root, "storage", "verification", fmt.Sprintf("v-%04d.json", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		body := fmt.Sprintf(`{"part": "p-%d", "ok": true, "pad": "%0*d"}`+"\n", i, 100+i%300, 0)
		os.WriteFile(p, []byte(body), 0o644)
		total += int64(len(body))
	}
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	os.MkdirAll(filepath.Join(a.Root, "storage", "recordings"), 0o755)
	os.WriteFile(filepath.Join(a.Root, "storage", "recordings", "r.webm"), big, 0o644)
	return total + int64(len(big)) + int64(len("first\n"))
}

// A backup copies what the one before it holds unchanged; --full, a last
// full read older than FullEvery, or a previous backup of another level
// (an emergency one, stored uncompressed) make it read every file.
func TestBackupsCopyUnchangedFilesAndReadFullyOnPurpose(t *testing.T) {
	a := newActivities(t, "")
	a.FullEvery = 30 * 24 * time.Hour
	tree := reuseTree(t, a)
	t0 := time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	day := 24 * time.Hour

	first := backup(t, a, workflows.KindScheduled, t0)
	if !first.FullRead || first.ReusedBytes != 0 {
		t.Fatalf("first backup: %+v", first)
	}
	second := backup(t, a, workflows.KindScheduled, at(day))
	if second.FullRead || second.ReusedFrom != first.ID || second.ReusedBytes != tree {
		t.Errorf("second backup of an unchanged tree reused %d of %d bytes from %q (full %v)", second.ReusedBytes, tree, second.ReusedFrom, second.FullRead)
	}
	full := backupPlan(t, a, workflows.BackupPlan{Kind: workflows.KindManual, StartedAt: at(2 * day), Full: true})
	if !full.FullRead || full.ReusedBytes != 0 {
		t.Errorf("--full: %+v", full)
	}
	// The last full read is now day 2: on day 31 backups still copy, on
	// day 32 one reads everything again.
	if b := backup(t, a, workflows.KindScheduled, at(31*day)); b.FullRead {
		t.Errorf("29 days after a full read: read everything")
	}
	if b := backup(t, a, workflows.KindScheduled, at(32*day)); !b.FullRead {
		t.Errorf("30 days after a full read: copied %d bytes from %s", b.ReusedBytes, b.ReusedFrom)
	}
	nightly := backup(t, a, workflows.KindScheduled, at(33*day))
	// An emergency backup copies from the level-4 one; the next nightly
	// does not copy the emergency one's stored members.
	em := backup(t, a, workflows.KindEmergency, at(33*day+time.Hour))
	if em.FullRead || em.ReusedFrom != nightly.ID {
		t.Errorf("emergency backup copied from %q, want %s", em.ReusedFrom, nightly.ID)
	}
	if b := backup(t, a, workflows.KindScheduled, at(34*day)); b.ReusedFrom != nightly.ID {
		t.Errorf("nightly after an emergency backup copied from %q, want %s", b.ReusedFrom, nightly.ID)
	}
	// With FullEvery 0 every backup reads everything.
	a.FullEvery = 0
	if b := backup(t, a, workflows.KindScheduled, at(35*day)); !b.FullRead {
		t.Errorf("FullEvery 0: copied from %s", b.ReusedFrom)
	}
}

// A drill report removes the reports older than a year, never the new one.
func TestDrillReportPrunesReportsOlderThanAYear(t *testing.T) {
	a := newActivities(t, "")
	old := time.Now().UTC().AddDate(-2, 0, 0)
	oldID := old.Format("20060102_150405")
	os.MkdirAll(a.Backups.DrillsPath(), 0o700)
	oldPath := filepath.Join(a.Backups.DrillsPath(), oldID+".json")
	os.WriteFile(oldPath, []byte(`{"drill_id":"`+oldID+`"}`), 0o600)
	now := time.Now().UTC()
	id := now.Format("20060102_150405")
	if err := a.DrillReport(context.Background(), workflows.DrillReport{DrillID: id, StartedAt: now, Passed: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(oldPath); !os.IsNotExist(err) {
		t.Errorf("a report two years old is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a.Backups.DrillsPath(), id+".json")); err != nil {
		t.Errorf("the new report: %v", err)
	}
}
