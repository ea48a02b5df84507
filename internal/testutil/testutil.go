// Package testutil holds helpers shared by the tests: the test PostgreSQL,
// the reference data in ../shared, and rules for skipping. Suites that need
// PostgreSQL or Docker skip locally with a reason but fail when CI is set.
package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// InCI reports whether the tests run in CI, where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") != "" }

// Need skips the test with reason, or fails it in CI.
func Need(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("required in CI: %s", reason)
	}
	t.Skip(reason)
}

// RepoRoot is the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// SharedDir is ../shared beside the repository ($VULCAN_SHARED_DIR overrides).
func SharedDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("VULCAN_SHARED_DIR"); d != "" {
		return d
	}
	d := filepath.Join(RepoRoot(t), "..", "shared")
	if _, err := os.Stat(filepath.Join(d, "bench", "vulcan_db.sql")); err != nil {
		Need(t, "reference data ../shared/bench not found: "+err.Error())
	}
	return d
}

// AdminURL is the test PostgreSQL ($VULCAN_TEST_DATABASE_URL, a role with
// CREATEDB); `make test` starts the server and sets it.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("VULCAN_TEST_DATABASE_URL")
	if u == "" {
		Need(t, "VULCAN_TEST_DATABASE_URL is not set (make test starts PostgreSQL and sets it)")
	}
	return u
}

// RandomName returns prefix plus 8 random hex digits.
func RandomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// NewDatabase creates an empty database for the test and drops it, and any
// database whose name starts with it, when the test ends. It returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "")
}

// NewNoCreateDatabase is NewDatabase for the role vulcan_nocreate, which may
// not create or rename databases: restores into it use the in-place fallback.
func NewNoCreateDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "vulcan_nocreate")
}

func newDatabase(t testing.TB, owner string) string {
	t.Helper()
	admin := AdminURL(t)
	name := RandomName("vt_")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if owner != "" {
		create += " OWNER " + pgx.Identifier{owner}.Sanitize()
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() { DropDatabases(t, admin, name) })
	u := WithDatabase(t, admin, name)
	if owner != "" {
		parsed, _ := url.Parse(u)
		parsed.User = url.UserPassword(owner, "vulcan-nocreate-secret")
		u = parsed.String()
	}
	return u
}

// DropDatabases drops every database whose name starts with prefix.
func DropDatabases(t testing.TB, admin, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("cleanup: drop %s: %v", n, err)
		}
	}
}

// WithDatabase returns base with its database name replaced.
func WithDatabase(t testing.TB, base, db string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}

// Psql runs psql against dbURL with extra arguments and fails the test on error.
func Psql(t testing.TB, dbURL string, args ...string) string {
	t.Helper()
	cmd := exec.Command("psql", append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname=" + dbURL}, args...)...) // #nosec G204 -- a fixed tool (pg_dump, psql, docker, systemctl) or the operator's own configured command; arguments are not a shell string
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// LoadVulcanDB fills the database with ../shared/bench/vulcan_db.sql (rows
// trades) plus testdata/extra_objects.sql (trigger, comments, sequences).
func LoadVulcanDB(t testing.TB, dbURL string, rows int) {
	t.Helper()
	Psql(t, dbURL, "-v", fmt.Sprintf("rows=%d", rows), "-f", filepath.Join(SharedDir(t), "bench", "vulcan_db.sql"))
	Psql(t, dbURL, "-f", filepath.Join(RepoRoot(t), "testdata", "extra_objects.sql"))
}

// Fingerprint describes a database's content and schema so that two can be
// compared: every table's rows (hashed), sequence values, views, triggers,
// functions, comments, constraints and column types.
func Fingerprint(t testing.TB, dbURL string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("fingerprint: %v", err)
	}
	defer conn.Close(ctx)
	fp := map[string]string{}
	collect := func(key, query string) {
		rows, err := conn.Query(ctx, query)
		if err != nil {
			t.Fatalf("fingerprint %s: %v", key, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("fingerprint %s: %v", key, err)
		}
		fp[key] = strings.Join(lines, "\n")
	}
	collect("columns", `SELECT table_schema||'.'||table_name||'.'||column_name||' '||data_type||' '||coalesce(column_default,'')
		FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog','information_schema') ORDER BY 1`)
	collect("views", `SELECT schemaname||'.'||viewname||' '||definition FROM pg_views WHERE schemaname NOT IN ('pg_catalog','information_schema') ORDER BY 1`)
	collect("triggers", `SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1`)
	collect("functions", `SELECT p.proname||' '||pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid=p.pronamespace WHERE n.nspname='public' ORDER BY 1`)
	collect("comments", `SELECT c.relname||'.'||d.objsubid||' '||d.description FROM pg_description d JOIN pg_class c ON c.oid=d.objoid
		JOIN pg_namespace n ON n.oid=c.relnamespace WHERE n.nspname='public' ORDER BY 1`)
	collect("indexes", `SELECT indexdef FROM pg_indexes WHERE schemaname='public' ORDER BY 1`)
	collect("constraints", `SELECT conrelid::regclass::text||' '||conname||' '||pg_get_constraintdef(oid)||' '||convalidated::text
		FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1`)
	collect("types", `SELECT t.typname||' '||string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_type t JOIN pg_enum e ON e.enumtypid=t.oid GROUP BY t.typname ORDER BY 1`)
	rows, err := conn.Query(ctx, `SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid=c.relnamespace
		WHERE n.nspname='public' AND c.relkind IN ('r','S') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	type rel struct{ name, kind string }
	var rels []rel
	for rows.Next() {
		var r rel
		if err := rows.Scan(&r.name, &r.kind); err != nil {
			t.Fatal(err)
		}
		rels = append(rels, r)
	}
	rows.Close()
	for _, r := range rels {
		id := pgx.Identifier{"public", r.name}.Sanitize()
		var v string
		var err error
		if r.kind == "S" {
			err = conn.QueryRow(ctx, "SELECT last_value::text||' '||is_called::text FROM "+id).Scan(&v)
		} else {
			err = conn.QueryRow(ctx, "SELECT count(*)::text||' '||coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM "+id+" t").Scan(&v)
		}
		if err != nil {
			t.Fatalf("fingerprint %s: %v", r.name, err)
		}
		fp[r.kind+":"+r.name] = v
	}
	return fp
}

// PasswordInQuery moves the password of a database URL from its user part to
// its query (?password=...), and returns the new URL and the password.
func PasswordInQuery(t testing.TB, raw string) (string, string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	q := u.Query()
	q.Set("password", password)
	u.RawQuery = q.Encode()
	return u.String(), password
}
