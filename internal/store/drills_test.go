package store

import (
	"os"
	"path/filepath"
	"testing"
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
