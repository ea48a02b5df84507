package pgdump

import "errors"

// ForceSessions sets how many sessions load a fresh database and the size
// from which a table's rows are shared between them, so that a test loads a
// small database on several sessions whatever the machine's cores; it
// returns the undo.
func ForceSessions(n int, split int64) func() {
	oldN, oldSplit := loadSessions, splitMin
	loadSessions, splitMin = n, split
	return func() { loadSessions, splitMin = oldN, oldSplit }
}

// PlannedSessions reports how many sessions would load the dump's table
// data, 0 where it would be loaded by one psql as it is.
func PlannedSessions(path string) (int, error) {
	p, err := planLoad(path)
	if err != nil {
		if errors.Is(err, errUnplanned) {
			return 0, nil
		}
		return 0, err
	}
	n := 0
	for _, s := range p.data {
		if len(s) > 0 {
			n++
		}
	}
	return n, nil
}
