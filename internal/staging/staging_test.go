package staging

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, p, s string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func TestSwapAndSwapBack(t *testing.T) {
	root := t.TempDir()
	tr := Tree{Root: root, ID: "r1"}
	write(t, filepath.Join(root, "storage/a"), "old")
	if err := tr.Reset(); err != nil {
		t.Fatal(err)
	}
	write(t, tr.Staged("storage/a"), "new")
	write(t, tr.Staged("data/x"), "new-x") // a path that did not exist before
	if err := tr.Swap([]string{"storage", "data"}); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(root, "storage/a")) != "new" || read(t, filepath.Join(root, "data/x")) != "new-x" {
		t.Fatal("swap did not put the staged copies in place")
	}
	if read(t, tr.PreRestore("storage")+"/a") != "old" {
		t.Fatal("old copy not kept")
	}
	// Swap is idempotent (a retried step).
	if err := tr.Swap([]string{"storage", "data"}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Reset(); err == nil {
		t.Fatal("reset after a swap began must be refused")
	}
	if err := tr.SwapBack(); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(root, "storage/a")) != "old" {
		t.Fatal("swap back did not restore the old copy")
	}
	if _, err := os.Stat(filepath.Join(root, "data")); !os.IsNotExist(err) {
		t.Fatal("a path that did not exist before must be gone after swap back")
	}
	if err := tr.Discard(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 {
		t.Fatalf("leftovers after swap back: %v", entries)
	}
	// SwapBack again does nothing harmful.
	if err := tr.SwapBack(); err != nil {
		t.Fatal(err)
	}
}

func TestSwapBackBeforeSwap(t *testing.T) {
	root := t.TempDir()
	tr := Tree{Root: root, ID: "r2"}
	write(t, filepath.Join(root, "storage/a"), "old")
	tr.Reset()
	write(t, tr.Staged("storage/a"), "half-extracted")
	if err := tr.SwapBack(); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(root, "storage/a")) != "old" {
		t.Fatal("target changed")
	}
	if err := tr.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tr.Dir()); !os.IsNotExist(err) {
		t.Fatal("staging left")
	}
}

func TestSwapBackWithoutCopy(t *testing.T) {
	root := t.TempDir()
	tr := Tree{Root: root, ID: "r3"}
	write(t, filepath.Join(root, "storage/a"), "old")
	tr.Reset()
	write(t, tr.Staged("storage/a"), "new")
	tr.Swap([]string{"storage"})
	os.RemoveAll(tr.PreRestore("storage"))
	err := tr.SwapBack()
	var nc *NoCopyError
	if !errors.Is(err, ErrNoCopy) || !errors.As(err, &nc) || len(nc.Paths) != 1 || nc.Paths[0] != "storage" {
		t.Fatalf("want ErrNoCopy for storage, got %v", err)
	}
}

// SwapBack keeps the staging directory's markers (the database step's mode)
// for Discard, which runs after it and needs them to drop the fresh
// database.
func TestSwapBackKeepsMarkersForDiscard(t *testing.T) {
	root := t.TempDir()
	tr := Tree{Root: root, ID: "r5"}
	write(t, filepath.Join(root, "storage/a"), "old")
	tr.Reset()
	write(t, tr.MarkerPath("database-mode"), "rename")
	write(t, tr.Staged("storage/a"), "new")
	if err := tr.Swap([]string{"storage"}); err != nil {
		t.Fatal(err)
	}
	if err := tr.SwapBack(); err != nil {
		t.Fatal(err)
	}
	if read(t, tr.MarkerPath("database-mode")) != "rename" {
		t.Fatal("marker gone after SwapBack")
	}
	if tr.SwapStarted() {
		t.Fatal("swap still recorded after SwapBack")
	}
	if err := tr.Discard(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 || read(t, filepath.Join(root, "storage/a")) != "old" {
		t.Fatalf("after discard: %v", entries)
	}
}

func TestCleanup(t *testing.T) {
	root := t.TempDir()
	tr := Tree{Root: root, ID: "r4"}
	write(t, filepath.Join(root, "storage/a"), "old")
	tr.Reset()
	write(t, tr.Staged("storage/a"), "new")
	tr.Swap([]string{"storage"})
	if err := tr.Cleanup(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || read(t, filepath.Join(root, "storage/a")) != "new" {
		t.Fatalf("after cleanup: %v", entries)
	}
}
