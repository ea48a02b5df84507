package retention

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

func TestPlan(t *testing.T) {
	now := time.Date(2025, 12, 23, 2, 0, 0, 0, time.UTC)
	day := func(d int, kind manifest.Kind, verified bool) Backup {
		at := now.Add(-time.Duration(d) * 24 * time.Hour)
		return Backup{ID: manifest.IDFor(at) + string(kind[0]), Kind: kind, CreatedAt: at, Verified: verified}
	}
	s, e := manifest.KindScheduled, manifest.KindEmergency
	cases := []struct {
		name       string
		backups    []Backup
		days       int
		wantDelete []int // indexes into backups
	}{
		{"nothing old", []Backup{day(0, s, true), day(3, s, true), day(6, s, true)}, 7, nil},
		{"older than 7 days go", []Backup{day(0, s, true), day(7, s, true), day(8, s, true), day(30, s, true)}, 7, []int{2, 3}},
		{"exactly at the cutoff stays", []Backup{day(1, s, true), day(7, s, true)}, 7, nil},
		{"newest verified is kept however old", []Backup{day(20, s, true), day(30, s, true)}, 7, []int{1}},
		{"an unverified newest does not protect", []Backup{day(20, s, false), day(30, s, true)}, 7, []int{0}},
		{"emergency counted apart", []Backup{day(1, s, true), day(10, e, true), day(12, e, true), day(15, s, true)}, 7, []int{2, 3}},
		{"emergency does not shield regular", []Backup{day(1, e, true), day(10, s, true), day(11, s, true)}, 7, []int{2}},
		{"one day retention", []Backup{day(0, s, true), day(2, s, true)}, 1, []int{1}},
		{"empty", nil, 7, nil},
		{"newest dump kept however old", []Backup{day(0, s, true), day(3, s, true), day(20, s, true).withDB(), day(25, s, true).withDB()}, 7, []int{3}},
		{"a recent dump protects the older ones not", []Backup{day(1, s, true).withDB(), day(9, s, true).withDB()}, 7, []int{1}},
		{"an emergency dump is not the newest dump", []Backup{day(0, s, true), day(2, e, true).withDB(), day(20, s, true).withDB()}, 7, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keep, remove, err := Plan(tc.backups, Policy{Days: tc.days}, now)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, i := range tc.wantDelete {
				want = append(want, tc.backups[i].ID)
			}
			var got []string
			for _, b := range remove {
				got = append(got, b.ID)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("deleted %v, want %v", got, want)
			}
			if len(keep)+len(remove) != len(tc.backups) {
				t.Fatalf("kept %d + deleted %d != %d", len(keep), len(remove), len(tc.backups))
			}
		})
	}
}

func (b Backup) withDB() Backup { b.Database = true; return b }

func TestChanges(t *testing.T) {
	now := time.Date(2025, 12, 23, 2, 0, 0, 0, time.UTC)
	b := func(d, files int, db bool, kind manifest.Kind) Backup {
		at := now.Add(-time.Duration(d) * 24 * time.Hour)
		return Backup{ID: manifest.IDFor(at), Kind: kind, CreatedAt: at, Verified: true, Database: db, Files: files}
	}
	s, e := manifest.KindScheduled, manifest.KindEmergency
	cases := []struct {
		name    string
		backups []Backup
		want    []string // substrings, one per warning
	}{
		{"same", []Backup{b(0, 100, true, s), b(1, 100, true, s)}, nil},
		{"dump lost", []Backup{b(0, 100, false, s), b(1, 100, true, s)}, []string{"no database dump"}},
		{"files halved", []Backup{b(0, 40, true, s), b(1, 100, true, s)}, []string{"40 files"}},
		{"both", []Backup{b(0, 3, false, s), b(1, 100, true, s)}, []string{"no database dump", "3 files"}},
		{"emergency ignored", []Backup{b(0, 1, false, e), b(1, 100, true, s), b(2, 100, true, s)}, nil},
		{"one backup", []Backup{b(0, 1, false, s)}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Changes(tc.backups)
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q, want it to say %q", got[i], w)
				}
			}
		})
	}
}

func TestPlanRefusesZeroDays(t *testing.T) {
	if _, _, err := Plan(nil, Policy{Days: 0}, time.Now()); err == nil {
		t.Fatal("a zero-day policy must be refused")
	}
}
