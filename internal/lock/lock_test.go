package lock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAcquire(t *testing.T) {
	dir := t.TempDir()
	a := Holder{Operation: "backup", WorkflowID: "wf-a"}
	b := Holder{Operation: "restore", WorkflowID: "wf-b"}
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

// A restore whose rollback did not complete keeps the lock even once its
// workflow has ended (terminated, timed out): the next backup must not
// snapshot the mixed state.
func TestIncompleteRollbackIsNeverTakenOver(t *testing.T) {
	dir := t.TempDir()
	r := Holder{Operation: "restore", WorkflowID: "wf-r"}
	if err := Acquire(dir, r, func(Holder) (bool, error) { return true, nil }); err != nil {
		t.Fatal(err)
	}
	r.State = StateIncomplete
	if err := Acquire(dir, r, func(Holder) (bool, error) { return true, nil }); err != nil {
		t.Fatalf("mark the lock: %v", err)
	}
	dead := func(Holder) (bool, error) { return false, nil }
	err := Acquire(dir, Holder{Operation: "backup", WorkflowID: "wf-b"}, dead)
	var busy *BusyError
	if !errors.As(err, &busy) || !strings.Contains(err.Error(), "did not complete") || !strings.Contains(err.Error(), "starter retry wf-r") {
		t.Fatalf("want busy naming the incomplete rollback, got %v", err)
	}
	// The restore itself (a retry of its rollback) still holds it.
	if err := Acquire(dir, r, dead); err != nil {
		t.Fatalf("holder re-acquires: %v", err)
	}
}

// The lock names the workflow, so a new run of it (a Reset from the Web UI)
// is still its holder.
func TestNewRunOfTheHolderKeepsTheLock(t *testing.T) {
	dir := t.TempDir()
	alive := func(Holder) (bool, error) { return true, nil }
	if err := Acquire(dir, Holder{Operation: "restore", WorkflowID: "wf-r"}, alive); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, FileName))
	if strings.Contains(string(data), "run_id") {
		t.Fatalf("lock file names a run: %s", data)
	}
	if err := Release(dir, Holder{WorkflowID: "wf-r"}); err != nil {
		t.Fatal(err)
	}
	if h, _ := Current(dir); h != nil {
		t.Fatalf("a new run could not release the lock: %+v", h)
	}
}
