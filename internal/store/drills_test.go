package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Drill reports are listed newest first; files that are not reports are
// skipped.
func TestDrills(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	if got, err := d.Drills(); err != nil || got != nil {
		t.Fatalf("no drills yet: %v %v", got, err)
	}
	os.MkdirAll(d.DrillsPath(), 0o700)
	for name, body := range map[string]string{
		"20250101_030000.json": `{"drill_id":"20250101_030000","backup_id":"20250101_020000","passed":true,"total_seconds":12}`,
		"20250201_030000.json": `{"drill_id":"20250201_030000","backup_id":"20250201_020000","passed":false,"error":"boom"}`,
		"20250301_030000.json": `not json`,
		"notes.txt":            `x`,
		"20250401_030000.json": `{"drill_id":"20250101_030000"}`, // names another drill
	} {
		os.WriteFile(filepath.Join(d.DrillsPath(), name), []byte(body), 0o600)
	}
	got, err := d.Drills()
	if err != nil || len(got) != 2 || got[0].DrillID != "20250201_030000" || got[0].Passed || got[1].TotalS != 12 {
		t.Fatalf("drills %+v (%v)", got, err)
	}
}

// Reports older than the retention go, except the newest, which status
// still shows; files that are not reports stay.
func TestPruneDrills(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	os.MkdirAll(d.DrillsPath(), 0o700)
	for _, id := range []string{"20240101_030000", "20241201_030000", "20250101_030000"} {
		os.WriteFile(filepath.Join(d.DrillsPath(), id+".json"), []byte(`{"drill_id":"`+id+`"}`), 0o600)
	}
	os.WriteFile(filepath.Join(d.DrillsPath(), "notes.txt"), nil, 0o600)
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	removed, err := d.PruneDrills(now, DrillRetention)
	if err != nil || len(removed) != 1 || filepath.Base(removed[0]) != "20240101_030000.json" {
		t.Fatalf("removed %v (%v), want the report of 2024-01-01 only", removed, err)
	}
	// A year later every report is old: the newest stays.
	removed, err = d.PruneDrills(now.AddDate(2, 0, 0), DrillRetention)
	if err != nil || len(removed) != 1 || filepath.Base(removed[0]) != "20241201_030000.json" {
		t.Fatalf("removed %v (%v), want all but the newest", removed, err)
	}
	left, _ := os.ReadDir(d.DrillsPath())
	if len(left) != 2 {
		t.Fatalf("left %v", left)
	}
}
