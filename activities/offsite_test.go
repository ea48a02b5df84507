package activities

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

func TestRetentionKeepsABackupWhoseOffsiteCopyIsPending(t *testing.T) {
	a := newActivities(t, "")
	now := time.Now().UTC()
	old := backup(t, a, workflows.KindManual, now.Add(-30*24*time.Hour))
	older := backup(t, a, workflows.KindManual, now.Add(-20*24*time.Hour))
	backup(t, a, workflows.KindManual, now)
	if err := a.Backups.MarkOffsitePending(old.ID); err != nil {
		t.Fatal(err)
	}
	out, err := a.ApplyRetention(context.Background(), workflows.RetentionInput{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(out.Deleted, older.ID) || slices.Contains(out.Deleted, old.ID) {
		t.Fatalf("deleted %v; want %s deleted and %s (copy pending) kept", out.Deleted, older.ID, old.ID)
	}
	if _, err := manifest.ReadBackup(a.Backups.ManifestPath(old.ID)); err != nil {
		t.Fatalf("the backup whose copy is pending: %v", err)
	}
	if !slices.ContainsFunc(out.Warnings, func(w string) bool { return strings.Contains(w, old.ID) && strings.Contains(w, "off-site") }) {
		t.Fatalf("no warning says why %s was kept: %v", old.ID, out.Warnings)
	}
}
