package pgdump_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/pgdump"
	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

func mustParse(t *testing.T, u string) *pgdump.Target {
	t.Helper()
	tg, err := pgdump.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func diffFingerprints(t *testing.T, want, got map[string]string) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(want))
	for _, k := range keys {
		if want[k] != got[k] {
			t.Errorf("%s differs:\n want %.300s\n got  %.300s", k, want[k], got[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s after restore", k)
		}
	}
}

func dump(t *testing.T, tg *pgdump.Target) (string, *pgdump.DumpResult) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dump.sql")
	res, err := pgdump.DumpToFile(context.Background(), tg, path, nil)
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	sum, size, err := archive.HashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if sum != res.SHA256 || size != res.Size {
		t.Fatalf("dump result says %s/%d, file is %s/%d", res.SHA256, res.Size, sum, size)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("dump mode %v, want 0600", st.Mode().Perm())
	}
	return path, res
}

func TestDumpRestoreFreshKeepsEverything(t *testing.T) {
	url, before, tg, path, res := dumpedReference(t, 3000)
	if n, ok := countOf(res, "public.trades"); !ok || n != 3000 {
		t.Fatalf("row count of public.trades = %d (%v), want 3000", n, ok)
	}
	if n, _ := countOf(res, "public.validations"); n != 1500 {
		t.Fatalf("row count of public.validations = %d, want 1500", n)
	}
	if !strings.HasPrefix(res.ServerVersion, "1") || res.Snapshot == "" {
		t.Fatalf("server version %q snapshot %q", res.ServerVersion, res.Snapshot)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "vulcan-test-secret") {
		t.Fatal("the dump contains the password")
	}

	// Damage the database, then restore.
	testutil.Psql(t, url, "-c", "DELETE FROM validation_attachments; DROP VIEW daily_pnl; UPDATE trades SET qty = 0 WHERE id < 100; SELECT setval('report_numbers', 1)")
	ctx := context.Background()
	id := "20250101_000000"
	if err := tg.RestoreFresh(ctx, path, id, res.Tables, nil); err != nil {
		t.Fatalf("restore: %v", err)
	}
	diffFingerprints(t, before, testutil.Fingerprint(t, url))

	// The old database is kept until dropped; a second call is a no-op.
	if ok, err := tg.DatabaseExists(ctx, tg.PreRestoreName(id)); err != nil || !ok {
		t.Fatalf("pre-restore database kept: %v %v", ok, err)
	}
	if err := tg.RestoreFresh(ctx, path, id, res.Tables, nil); err != nil {
		t.Fatalf("repeated restore: %v", err)
	}
	if err := tg.CheckCounts(ctx, res.Tables); err != nil {
		t.Fatal(err)
	}

	// Swap back brings the damaged database back.
	swapped, err := tg.SwapBack(ctx, id)
	if err != nil || !swapped {
		t.Fatalf("swap back: %v %v", swapped, err)
	}
	if err := tg.CheckCounts(ctx, res.Tables); !errors.Is(err, pgdump.ErrRowCounts) {
		t.Fatalf("after swap back want the damaged counts, got %v", err)
	}
	for _, db := range []string{tg.PreRestoreName(id), tg.RestoreName(id)} {
		if ok, _ := tg.DatabaseExists(ctx, db); ok {
			t.Errorf("%s left behind", db)
		}
	}
}

// dumpedReference fills a new database with the reference data (rows
// trades), then fingerprints and dumps it.
func dumpedReference(t *testing.T, rows int) (url string, before map[string]string, tg *pgdump.Target, path string, res *pgdump.DumpResult) {
	t.Helper()
	url = testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, rows)
	before = testutil.Fingerprint(t, url)
	tg = mustParse(t, url)
	path, res = dump(t, tg)
	return url, before, tg, path, res
}

func countOf(res *pgdump.DumpResult, table string) (int64, bool) {
	for _, tc := range res.Tables {
		if tc.Table == table {
			return tc.Rows, true
		}
	}
	return 0, false
}

func TestRestoreDropPreRestore(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 200)
	tg := mustParse(t, url)
	path, res := dump(t, tg)
	ctx := context.Background()
	id := "20250102_000000"
	if err := tg.RestoreFresh(ctx, path, id, res.Tables, nil); err != nil {
		t.Fatal(err)
	}
	if err := tg.DropPreRestore(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tg.DatabaseExists(ctx, tg.PreRestoreName(id)); ok {
		t.Fatal("pre-restore database still there")
	}
	if err := tg.CheckCounts(ctx, res.Tables); err != nil {
		t.Fatal(err)
	}
}

// A restore loads without analyzing (it is left to the restore's clean-up):
// Analyze then gives every restored table its statistics.
func TestAnalyzeAfterRestore(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 200)
	tg := mustParse(t, url)
	path, res := dump(t, tg)
	ctx := context.Background()
	if err := tg.RestoreFresh(ctx, path, "20250105_000000", res.Tables, nil); err != nil {
		t.Fatal(err)
	}
	analyzed := func() (done, all int) {
		out := testutil.Psql(t, url, "-Atc", `SELECT count(*) FILTER (WHERE last_analyze IS NOT NULL), count(*) FROM pg_stat_user_tables`)
		if _, err := fmt.Sscanf(strings.TrimSpace(out), "%d|%d", &done, &all); err != nil {
			t.Fatalf("read statistics state %q: %v", out, err)
		}
		return done, all
	}
	if done, all := analyzed(); done != 0 || all < len(res.Tables) {
		t.Fatalf("after the load %d of %d tables are analyzed, want none of at least %d", done, all, len(res.Tables))
	}
	if err := tg.Analyze(ctx); err != nil {
		t.Fatal(err)
	}
	if done, all := analyzed(); done != all {
		t.Fatalf("%d of %d tables analyzed, want all", done, all)
	}
}

// A role without CREATEDB cannot use the rename swap: RestoreFresh says so
// without changing anything, and the in-place restore does the job.
func TestInPlaceFallback(t *testing.T) {
	url := testutil.NewNoCreateDatabase(t)
	testutil.LoadVulcanDB(t, url, 500)
	before := testutil.Fingerprint(t, url)
	tg := mustParse(t, url)
	path, res := dump(t, tg)
	testutil.Psql(t, url, "-c", "DELETE FROM validation_attachments; DROP MATERIALIZED VIEW part_stats;")

	ctx := context.Background()
	err := tg.RestoreFresh(ctx, path, "20250103_000000", res.Tables, nil)
	if !errors.Is(err, pgdump.ErrRenameNotAllowed) {
		t.Fatalf("want ErrRenameNotAllowed, got %v", err)
	}
	if err := tg.RestoreInPlace(ctx, path, res.Tables, nil); err != nil {
		t.Fatalf("in place: %v", err)
	}
	diffFingerprints(t, before, testutil.Fingerprint(t, url))
}

// A dump that fails half-way leaves the database as it was.
func TestInPlaceFailureChangesNothing(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 100)
	tg := mustParse(t, url)
	path, res := dump(t, tg)
	before := testutil.Fingerprint(t, url)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\nSELECT no_such_function();\n")
	f.Close()
	err = tg.RestoreInPlace(context.Background(), path, res.Tables, nil)
	if err == nil || !strings.Contains(err.Error(), "no_such_function") {
		t.Fatalf("want the psql error, got %v", err)
	}
	diffFingerprints(t, before, testutil.Fingerprint(t, url))
}

func TestDatabaseDownIsAClearError(t *testing.T) {
	tg := mustParse(t, "postgres://vulcan:s3cret-pw@127.0.0.1:1/vulcan_db")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := pgdump.DumpToFile(ctx, tg, filepath.Join(t.TempDir(), "x.sql"), nil)
	if err == nil {
		t.Fatal("dump of a database that is down succeeded")
	}
	if !strings.Contains(err.Error(), "vulcan@127.0.0.1:1/vulcan_db") {
		t.Errorf("error does not name the database: %v", err)
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("error shows the password: %v", err)
	}
	if _, err := os.Stat(filepath.Join(t.TempDir(), "x.sql")); !os.IsNotExist(err) {
		t.Errorf("a dump file was left: %v", err)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"postgres://u:p@h:5433/db?sslmode=disable", "u@h:5433/db", ""},
		{"postgresql://h/db", "h/db", ""},
		{"mysql://h/db", "", "scheme"},
		{"postgres://u:p@h:5432/", "", "no database name"},
		{"postgres://u:p@h:5432", "", "no database name"},
	} {
		tg, err := pgdump.Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || tg.String() != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %s", tc.in, tg, err, tc.want)
		}
	}
}

// A password in the URL's query never reaches a tool's command line (ps
// shows it to every local user): it goes through PGPASSWORD like one in the
// user part, and the database still answers with it.
func TestPasswordInTheQueryStaysOffTheCommandLine(t *testing.T) {
	for _, raw := range []string{
		"postgres://u@h:5432/db?password=s3cr%26t&sslmode=disable",
		"postgres://u:s3cr%26t@h:5432/db?sslmode=disable",
	} {
		tg, err := pgdump.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if u := tg.ToolURL(); strings.Contains(u, "s3cr") || !strings.Contains(u, "sslmode=disable") {
			t.Errorf("%s: tool URL %s", raw, u)
		}
		if !slices.Contains(tg.ToolEnv(), "PGPASSWORD=s3cr&t") {
			t.Errorf("%s: no PGPASSWORD for the tools", raw)
		}
	}
	inQuery, _ := testutil.PasswordInQuery(t, testutil.NewDatabase(t))
	tg, err := pgdump.Parse(inQuery)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Ping(context.Background()); err != nil {
		t.Fatalf("ping with the password from the query: %v", err)
	}
	dump(t, tg) // pg_dump gets it too
}

// The fresh database is loaded on several sessions, the largest tables'
// rows shared between them, and holds exactly what one psql would load.
func TestParallelLoadKeepsEverything(t *testing.T) {
	url, before, tg, path, res := dumpedReference(t, 3000)
	defer pgdump.ForceSessions(2, 64<<10)()
	if n, err := pgdump.PlannedSessions(path); err != nil || n != 2 {
		t.Fatalf("the reference dump is loaded on %d sessions (%v), want 2", n, err)
	}
	testutil.Psql(t, url, "-c", "DELETE FROM validations; UPDATE trades SET qty = 0")
	id := "20250101_000001"
	if err := tg.RestoreFresh(context.Background(), path, id, res.Tables, nil); err != nil {
		t.Fatalf("restore: %v", err)
	}
	diffFingerprints(t, before, testutil.Fingerprint(t, url))
}

// A row that does not load fails the load on its session, stops the
// others, drops the fresh database and leaves the current one as it was.
func TestParallelLoadFailureChangesNothing(t *testing.T) {
	url, before, tg, path, res := dumpedReference(t, 3000)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A trade's quantity that is not a number, in the second half of the
	// trades, which the second session loads.
	lines := strings.Split(string(data), "\n")
	copyAt := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, `COPY "public"."trades" `) })
	endAt := copyAt + slices.Index(lines[copyAt:], `\.`)
	bad := copyAt + (endAt-copyAt)*3/4
	fields := strings.Split(lines[bad], "\t")
	fields[4] = "not-a-number"
	lines[bad] = strings.Join(fields, "\t")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	defer pgdump.ForceSessions(2, 64<<10)()
	if n, err := pgdump.PlannedSessions(path); err != nil || n != 2 {
		t.Fatalf("loaded on %d sessions (%v), want 2", n, err)
	}
	id := "20250101_000002"
	err = tg.RestoreFresh(context.Background(), path, id, res.Tables, nil)
	if !errors.Is(err, pgdump.ErrScript) || !strings.Contains(err.Error(), "not-a-number") {
		t.Fatalf("restore of a dump with a bad row: %v, want ErrScript naming the value", err)
	}
	for _, db := range []string{tg.RestoreName(id), tg.PreRestoreName(id)} {
		if ok, err := tg.DatabaseExists(context.Background(), db); err != nil || ok {
			t.Errorf("%s left behind (%v)", db, err)
		}
	}
	diffFingerprints(t, before, testutil.Fingerprint(t, url))
}

// A worker that dies between the swap's two renames leaves the current
// database renamed aside and the restored one under its fresh name: the
// retried step finishes the swap instead of taking it for done.
func TestHalfDoneSwapIsFinished(t *testing.T) {
	_, _, tg, path, res := dumpedReference(t, 100)
	ctx := context.Background()
	id := "20250104_000000"
	if err := tg.LoadFresh(ctx, path, id, res.Tables, nil); err != nil {
		t.Fatal(err)
	}
	if err := tg.RenameForTest(ctx, tg.Name, tg.PreRestoreName(id)); err != nil {
		t.Fatal(err)
	}
	if err := tg.SwapIn(ctx, id); err != nil {
		t.Fatal(err)
	}
	for db, want := range map[string]bool{tg.Name: true, tg.PreRestoreName(id): true, tg.RestoreName(id): false} {
		if ok, err := tg.DatabaseExists(ctx, db); err != nil || ok != want {
			t.Errorf("database %s exists: %v (%v), want %v", db, ok, err, want)
		}
	}
	if err := tg.CheckCounts(ctx, res.Tables); err != nil {
		t.Fatal(err)
	}
}

// A rename swap keeps what the dump does not carry: the database's
// privileges and its settings, for the database and for a role in it.
func TestRestoreFreshKeepsPrivilegesAndSettings(t *testing.T) {
	url := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, url, 50)
	tg := mustParse(t, url)
	db := pgx.Identifier{tg.Name}.Sanitize()
	testutil.Psql(t, url, "-c", "REVOKE ALL ON DATABASE "+db+" FROM PUBLIC",
		"-c", "GRANT CONNECT, TEMPORARY ON DATABASE "+db+" TO vulcan_nocreate",
		"-c", "ALTER DATABASE "+db+" SET work_mem = '7MB'",
		"-c", `ALTER DATABASE `+db+` SET search_path = "$user", public, extra`,
		"-c", "ALTER ROLE vulcan_test IN DATABASE "+db+" SET statement_timeout = '42s'")
	properties := func() string {
		t.Helper()
		return testutil.Psql(t, url, "-tA", "-c", `SELECT
			(SELECT string_agg(pg_get_userbyid(a.grantee) || ':' || a.privilege_type, ',' ORDER BY 1)
			   FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database()),
			(SELECT string_agg(COALESCE(pg_get_userbyid(NULLIF(s.setrole, 0)), '-') || ':' || array_to_string(s.setconfig, ';'), ',' ORDER BY 1)
			   FROM pg_db_role_setting s WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()))`)
	}
	before := properties()
	path, res := dump(t, tg)
	if err := tg.RestoreFresh(context.Background(), path, "20250112_000000", res.Tables, nil); err != nil {
		t.Fatal(err)
	}
	if after := properties(); after != before {
		t.Fatalf("after the swap:\n%s\nbefore:\n%s", after, before)
	}
}

// An undo borrows the database a restore kept, swaps it in, and, rolled
// back, puts both where they were: nothing is dropped on the way.
func TestUndoBorrowsTheKeptDatabase(t *testing.T) {
	url, before, tg, path, res := dumpedReference(t, 100)
	ctx := context.Background()
	restoreID, undoID := "20250120_000000", "20250120_000100"
	testutil.Psql(t, url, "-c", "DELETE FROM trades WHERE id % 2 = 0")
	damaged := testutil.Fingerprint(t, url)
	// Restore the dump over the damaged database: the damaged one is kept.
	if err := tg.RestoreFresh(ctx, path, restoreID, res.Tables, nil); err != nil {
		t.Fatal(err)
	}
	counts, err := tg.Borrow(ctx, restoreID, undoID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Borrow(ctx, restoreID, undoID); err != nil { // a retried step
		t.Fatal(err)
	}
	if err := tg.SwapIn(ctx, undoID); err != nil {
		t.Fatal(err)
	}
	diffFingerprints(t, damaged, testutil.Fingerprint(t, url))
	if err := tg.CheckCounts(ctx, counts); err != nil {
		t.Fatalf("the borrowed database's counts: %v", err)
	}
	// Roll the undo back: the restored database is in place again, the
	// damaged one is the restore's kept copy again.
	for range 2 {
		if _, err := tg.SwapBackKeeping(ctx, undoID); err != nil {
			t.Fatal(err)
		}
	}
	if err := tg.GiveBack(ctx, restoreID, undoID); err != nil {
		t.Fatal(err)
	}
	if err := tg.GiveBack(ctx, restoreID, undoID); err != nil {
		t.Fatal(err)
	}
	diffFingerprints(t, before, testutil.Fingerprint(t, url))
	for db, want := range map[string]bool{tg.PreRestoreName(restoreID): true, tg.RestoreName(undoID): false, tg.PreRestoreName(undoID): false} {
		if ok, err := tg.DatabaseExists(ctx, db); err != nil || ok != want {
			t.Errorf("database %s exists: %v (%v), want %v", db, ok, err, want)
		}
	}
	if _, err := tg.Borrow(ctx, "20250120_999999", undoID); err == nil {
		t.Fatal("borrowing from a restore that kept nothing must fail")
	}
}
