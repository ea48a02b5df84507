package workflows

import (
	"testing"
	"time"
)

// An undo started in the same second as the restore it undoes gets a later
// id; any other restore keeps the id of its start.
func TestRestoreIDOfAnUndoFollowsItsRestore(t *testing.T) {
	at := time.Date(2026, 12, 2, 11, 16, 42, 700_000_000, time.UTC)
	for _, tc := range []struct {
		undo, want string
	}{
		{"", "20261202_111642"},
		{"20261202_111642", "20261202_111643"},
		{"20261202_111641", "20261202_111642"},
		{"not-an-id", "20261202_111642"},
	} {
		if got := restoreID(at, tc.undo); got != tc.want {
			t.Errorf("undo %q: id %s, want %s", tc.undo, got, tc.want)
		}
	}
}
