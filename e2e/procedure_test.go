package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

// execServices is an application stand-in for the exec controller: a flag
// file says it runs, and every stop and start is logged.
func execServices(root string) []string {
	log := filepath.Join(root, "services.log")
	flag := filepath.Join(root, "app.running")
	return []string{
		"VULCAN_SERVICES=exec",
		"VULCAN_EXEC_STATUS=test -f " + flag,
		"VULCAN_EXEC_STOP=echo stop >> " + log + " && rm -f " + flag,
		"VULCAN_EXEC_START=echo start >> " + log + " && touch " + flag,
		"VULCAN_EXEC_HEALTH=test -f " + flag,
	}
}

// unhealthyWhile runs the application under the exec controller (as
// execServices) and makes it unhealthy while the file rel (relative to the
// root) exists; it returns that file's path.
func (s *system) unhealthyWhile(rel string) string {
	s.env = append(s.env, execServices(s.root)...)
	flag := filepath.Join(s.root, filepath.FromSlash(rel))
	for i, e := range s.env {
		if strings.HasPrefix(e, "VULCAN_EXEC_HEALTH=") {
			s.env[i] = e + " && test ! -f " + flag
		}
	}
	return flag
}

// The documented automated test: create data, back up, delete, restore,
// verify every byte and row; then the documented manual procedure.
func TestDocumentedProcedure(t *testing.T) {
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 2000)
	s := newSystem(t, "DATABASE_URL="+dbURL)
	s.env = append(s.env, execServices(s.root)...)
	makeStorage(t, s.root, 8)
	os.WriteFile(filepath.Join(s.root, "app.running"), nil, 0o644)
	wantTree := treeDigest(t, filepath.Join(s.root, "storage"))
	wantDB := testutil.Fingerprint(t, dbURL)
	s.start()

	b := s.backup()
	if !b.Result.Database || b.Result.ID == "" {
		t.Fatalf("backup result %+v", b.Result)
	}
	for _, p := range []string{b.Result.Archive, b.Result.Manifest, "backups/database/vulcan_db_" + b.Result.ID + ".sql"} {
		st, err := os.Stat(filepath.Join(s.root, p))
		if err != nil {
			t.Fatalf("backup file %s: %v", p, err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, st.Mode().Perm())
		}
	}
	if out := s.mustStarter("verify", b.Result.Archive); !strings.Contains(out, "OK") {
		t.Fatalf("verify: %s", out)
	}
	var list struct {
		Backups []struct {
			ID       string `json:"id"`
			Kind     string `json:"kind"`
			Verified bool   `json:"verified"`
		} `json:"backups"`
	}
	json.Unmarshal([]byte(s.mustStarter("list", "--json")), &list)
	if len(list.Backups) != 1 || list.Backups[0].Kind != "manual" || !list.Backups[0].Verified {
		t.Fatalf("list: %+v", list)
	}
	if out := s.mustStarter("info", b.Result.ID); !strings.Contains(out, "public.trades") || !strings.Contains(out, "2000 rows") {
		t.Fatalf("info: %s", out)
	}

	// Delete data.
	os.RemoveAll(filepath.Join(s.root, "storage/recordings"))
	os.WriteFile(filepath.Join(s.root, "storage/logs/app-000.log"), []byte("overwritten"), 0o644)
	testutil.Psql(t, dbURL, "-c", "DELETE FROM validation_attachments; DELETE FROM validations; DROP VIEW daily_pnl;")

	// A dry run changes nothing.
	out := s.mustStarter("restore", b.Result.Archive, "--dry-run")
	if !strings.Contains(out, "dry run") || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("dry run: %s", out)
	}
	if _, err := os.Stat(filepath.Join(s.root, "storage/recordings")); !os.IsNotExist(err) {
		t.Fatal("dry run restored files")
	}

	// Restore.
	out = s.mustStarter("restore", b.Result.Archive, "--yes")
	if !strings.Contains(out, "restored backup "+b.Result.ID) || !strings.Contains(out, "emergency backup") {
		t.Fatalf("restore output: %s", out)
	}
	diffDigests(t, "storage", wantTree, treeDigest(t, filepath.Join(s.root, "storage")))
	diffDigests(t, "database after restore", wantDB, testutil.Fingerprint(t, dbURL))
	if l := leftovers(t, s.root); len(l) > 0 {
		t.Errorf("restore leftovers: %v", l)
	}
	assertNoTempDatabases(t, dbURL)
	json.Unmarshal([]byte(s.mustStarter("list", "--json")), &list)
	kinds := map[string]int{}
	for _, b := range list.Backups {
		kinds[b.Kind]++
	}
	if kinds["emergency"] != 1 || kinds["manual"] != 1 {
		t.Fatalf("want one manual and one emergency backup, got %v", kinds)
	}
	svc, _ := os.ReadFile(filepath.Join(s.root, "services.log"))
	if string(svc) != "stop\nstart\n" {
		t.Fatalf("services log %q, want stop then start", svc)
	}

	// The manual procedure: tar -xzf at a fresh root, then psql < dump.
	manual := t.TempDir()
	archive := filepath.Join(s.root, b.Result.Archive)
	if out, err := exec.Command("tar", "-xzf", archive, "-C", manual).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v\n%s", err, out)
	}
	diffDigests(t, "manual storage", wantTree, treeDigest(t, filepath.Join(manual, "storage")))
	manual2 := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", archive, "-C", manual2, "database/").CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf database/: %v\n%s", err, out)
	}
	freshDB := testutil.NewDatabase(t)
	testutil.Psql(t, freshDB, "-f", filepath.Join(manual2, "database", "vulcan_db_"+b.Result.ID+".sql"))
	diffDigests(t, "manual restore: database", wantDB, testutil.Fingerprint(t, freshDB))
	// psql over the existing database replaces it too (the dump cleans first).
	testutil.Psql(t, dbURL, "-c", "DELETE FROM trades WHERE id > 10")
	testutil.Psql(t, dbURL, "-f", filepath.Join(s.root, "backups", "database", "vulcan_db_"+b.Result.ID+".sql"))
	if got := testutil.Fingerprint(t, dbURL); got["r:trades"] != wantDB["r:trades"] {
		t.Errorf("psql over the live database did not bring the trades back")
	}

	// History for the replay tests, when asked.
	recordHistories(t, s)
}

func assertNoTempDatabases(t *testing.T, dbURL string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	// Only this database's own: <db>_restore_<id> and <db>_pre_restore_<id>,
	// allowing a minute for the cleanup workflow that follows a restore.
	var n int
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_database
			WHERE starts_with(datname, current_database() || '_') AND datname LIKE '%\_restore\_%'`).Scan(&n)
		if n == 0 || time.Now().After(deadline) {
			break
		}
	}
	if n != 0 {
		t.Errorf("%d temporary restore databases left", n)
	}
}
