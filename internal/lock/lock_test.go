package lock

import (
	"errors"
	"strings"
	"testing"
)

func TestAcquire(t *testing.T) {
	dir := t.TempDir()
	a := Holder{Operation: "backup", WorkflowID: "wf-a", RunID: "r1"}
	b := Holder{Operation: "restore", WorkflowID: "wf-b", RunID: "r2"}
	running := map[string]bool{"wf-a": true}
	isRunning := func(h Holder) (bool, error) { return running[h.WorkflowID], nil }

	if err := Acquire(dir, a, isRunning); err != nil {
		t.Fatal(err)
	}
	if err := Acquire(dir, a, isRunning); err != nil {
		t.Fatalf("re-acquire by the holder (a retried activity): %v", err)
	}
	err := Acquire(dir, b, isRunning)
	var busy *BusyError
	if !errors.As(err, &busy) || !strings.Contains(err.Error(), "backup workflow wf-a") {
		t.Fatalf("want busy naming wf-a, got %v", err)
	}
	// The holder died: its lock is taken over.
	running["wf-a"] = false
	if err := Acquire(dir, b, isRunning); err != nil {
		t.Fatalf("take over a stale lock: %v", err)
	}
	// Releasing someone else's lock does nothing.
	if err := Release(dir, a); err != nil {
		t.Fatal(err)
	}
	if h, _ := Current(dir); h == nil || h.WorkflowID != "wf-b" {
		t.Fatalf("holder %+v, want wf-b", h)
	}
	if err := Release(dir, b); err != nil {
		t.Fatal(err)
	}
	if h, _ := Current(dir); h != nil {
		t.Fatalf("lock still held by %+v", h)
	}
}
