package staging

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// restored sets up what a verified restore r1 leaves in its undo window:
// storage restored (its state before kept as storage.pre-restore-r1) and a
// path "data" that r1 created.
func restored(t *testing.T) (root string, r1 Tree) {
	t.Helper()
	root = t.TempDir()
	r1 = Tree{Root: root, ID: "r1"}
	write(t, filepath.Join(root, "storage/a"), "before")
	if err := r1.Reset(); err != nil {
		t.Fatal(err)
	}
	write(t, r1.Staged("storage/a"), "restored")
	write(t, r1.Staged("data/x"), "restored-x")
	if err := r1.Swap([]string{"storage", "data"}); err != nil {
		t.Fatal(err)
	}
	return root, r1
}

func TestUndoSwapsThePreRestoreCopiesBack(t *testing.T) {
	root, r1 := restored(t)
	u := Tree{Root: root, ID: "u1"}
	paths, err := u.Borrow(r1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(paths, []string{"storage", "data"}) {
		t.Fatalf("paths = %v", paths)
	}
	if err := u.Reset(); err == nil {
		t.Fatal("reset of borrowed copies must be refused")
	}
	if err := u.Swap(paths); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(root, "storage/a")); got != "before" {
		t.Fatalf("storage/a after undo = %q, want the state before r1", got)
	}
	if _, err := os.Stat(filepath.Join(root, "data")); !os.IsNotExist(err) {
		t.Fatal("a path r1 created must be gone after its undo")
	}
	// The undo keeps what it replaced, so it can be undone in turn.
	if read(t, u.PreRestore("storage")+"/a") != "restored" || read(t, u.PreRestore("data")+"/x") != "restored-x" {
		t.Fatal("the undo did not keep the restored state as its own pre-restore copies")
	}
	if err := u.Swap(paths); err != nil { // a retried step
		t.Fatal(err)
	}
	if err := u.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := r1.Cleanup(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || read(t, filepath.Join(root, "storage/a")) != "before" {
		t.Fatalf("after both clean-ups: %v", entries)
	}
}

func TestFailedUndoGivesTheCopiesBack(t *testing.T) {
	root, r1 := restored(t)
	u := Tree{Root: root, ID: "u1"}
	paths, err := u.Borrow(r1)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Swap(paths); err != nil {
		t.Fatal(err)
	}
	if err := u.SwapBack(); err != nil {
		t.Fatal(err)
	}
	if err := u.Discard(); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(root, "storage/a")) != "restored" || read(t, filepath.Join(root, "data/x")) != "restored-x" {
		t.Fatal("a rolled-back undo must leave the restored state in place")
	}
	if read(t, r1.PreRestore("storage")+"/a") != "before" {
		t.Fatal("a rolled-back undo must give r1 its pre-restore copy back")
	}
	if _, err := os.Stat(u.Dir()); !os.IsNotExist(err) {
		t.Fatal("the undo's staging directory is left")
	}
	// r1 can be undone again.
	if _, err := (Tree{Root: root, ID: "u2"}).Borrow(r1); err != nil {
		t.Fatal(err)
	}
}

func TestBorrowRefusesWithoutCopiesAndChangesNothing(t *testing.T) {
	root, r1 := restored(t)
	if _, err := (Tree{Root: root, ID: "u1"}).Borrow(Tree{Root: root, ID: "nope"}); !errors.Is(err, ErrNothingToUndo) {
		t.Fatalf("undo of an unknown restore: %v", err)
	}
	if err := os.Rename(r1.PreRestore("storage"), filepath.Join(root, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	u := Tree{Root: root, ID: "u1"}
	if _, err := u.Borrow(r1); !errors.Is(err, ErrNothingToUndo) {
		t.Fatalf("undo with a missing copy: %v", err)
	}
	if _, err := os.Stat(u.Dir()); !os.IsNotExist(err) {
		t.Fatal("a refused undo created its staging directory")
	}
}

func TestBorrowResumesAfterACrash(t *testing.T) {
	root := t.TempDir()
	r1 := Tree{Root: root, ID: "r1"}
	for _, p := range []string{"a", "b"} {
		write(t, filepath.Join(root, p, "f"), "before-"+p)
	}
	r1.Reset()
	for _, p := range []string{"a", "b"} {
		write(t, r1.Staged(p+"/f"), "restored-"+p)
	}
	if err := r1.Swap([]string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	u := Tree{Root: root, ID: "u1"}
	// A crash after the loan record and the first move.
	os.Mkdir(u.Dir(), 0o700)
	write(t, u.loanPath(), `{"from":"r1","paths":["a","b"]}`)
	if err := os.Rename(r1.PreRestore("a"), u.Staged("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Borrow(r1); err != nil {
		t.Fatal(err)
	}
	if read(t, u.Staged("a/f")) != "before-a" || read(t, u.Staged("b/f")) != "before-b" {
		t.Fatal("the resumed borrow did not bring every copy")
	}
}
