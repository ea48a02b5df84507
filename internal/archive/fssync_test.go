package archive

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The syncer syncs in the background until Finish, which syncs once more;
// Close after Finish, or on its own, is harmless.
func TestFSSyncer(t *testing.T) {
	dir := t.TempDir()
	s, err := startSync(dir, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		n := s.syncs
		s.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d background syncs in 10 s", n)
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	quiet, err := startSync(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	quiet.Close()
	if quiet.syncs != 0 {
		t.Fatalf("%d syncs without an interval and without Finish", quiet.syncs)
	}
	if _, err := startSync(filepath.Join(dir, "missing"), time.Millisecond); err == nil {
		t.Fatal("a missing directory was accepted")
	}
}
