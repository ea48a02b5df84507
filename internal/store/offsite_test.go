package store

import (
	"testing"
	"time"
)

func TestOffsiteMarksAndLastCopy(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	if ids, err := d.OffsitePending(); err != nil || len(ids) != 0 {
		t.Fatalf("no marks yet: %v, %v", ids, err)
	}
	for _, id := range []string{"20261202_020000", "20261201_020000"} {
		if err := d.MarkOffsitePending(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.MarkOffsitePending("../x"); err == nil {
		t.Fatal("a mark for a path, not an id, was written")
	}
	ids, err := d.OffsitePending()
	if err != nil || len(ids) != 2 || ids[0] != "20261201_020000" {
		t.Fatalf("OffsitePending = %v, %v; want oldest first", ids, err)
	}
	if err := d.ClearOffsitePending("20261201_020000"); err != nil {
		t.Fatal(err)
	}
	if err := d.ClearOffsitePending("20261201_020000"); err != nil {
		t.Fatalf("clearing twice: %v", err)
	}
	if ids, _ := d.OffsitePending(); len(ids) != 1 {
		t.Fatalf("after clearing: %v", ids)
	}
	if c, err := d.LastOffsite(); c != nil || err != nil {
		t.Fatalf("no copy yet: %v, %v", c, err)
	}
	want := OffsiteCopy{ID: "20261201_020000", CopiedAt: time.Date(2026, 12, 1, 2, 5, 0, 0, time.UTC), Objects: 3, SentBytes: 10}
	if err := d.WriteLastOffsite(want); err != nil {
		t.Fatal(err)
	}
	if got, err := d.LastOffsite(); err != nil || *got != want {
		t.Fatalf("LastOffsite = %+v, %v", got, err)
	}
	// The state directory is no backup and no debris.
	if infos, _, err := d.List(); err != nil || len(infos) != 0 {
		t.Fatalf("List = %v, %v", infos, err)
	}
	if removed, err := d.CleanDebris(); err != nil || len(removed) != 0 {
		t.Fatalf("CleanDebris removed %v, %v", removed, err)
	}
}
