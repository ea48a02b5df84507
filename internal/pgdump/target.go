// Package pgdump dumps and restores the application's PostgreSQL database with
// the standard client tools (pg_dump, psql) and counts rows with pgx.
//
// A dump runs inside an exported snapshot, so the per-table row counts recorded
// in the manifest describe exactly the data in the dump. A restore loads the
// dump into a fresh database and swaps it in by renaming, keeping the old
// database until the caller drops it; where renaming is not allowed it falls
// back to an in-place, single-transaction load.
//
// The password never appears in process arguments: the tools get it through
// PGPASSWORD.
package pgdump

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Target is a parsed DATABASE_URL.
type Target struct {
	u        *url.URL // without password
	password string
	// Name is the database name.
	Name string
}

// ErrBadURL marks a DATABASE_URL that cannot be used.
var ErrBadURL = errors.New("invalid DATABASE_URL")

// Parse reads a postgres:// or postgresql:// URL.
func Parse(raw string) (*Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, redactParseError(err))
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("%w: scheme %q, want postgres://user:password@host:port/dbname", ErrBadURL, u.Scheme)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("%w: no database name in the path (postgres://user@host:port/dbname)", ErrBadURL)
	}
	t := &Target{Name: name}
	if u.User != nil {
		t.password, _ = u.User.Password()
		u.User = url.User(u.User.Username())
	}
	// A password may also come as a query parameter; it leaves the URL
	// too, since the URL reaches pg_dump's and psql's command lines.
	if q := u.Query(); q.Has("password") {
		if t.password == "" {
			t.password = q.Get("password")
		}
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	t.u = u
	return t, nil
}

func redactParseError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "cannot parse"
}

// String describes the target without its password: user@host:port/dbname.
func (t *Target) String() string {
	host := t.u.Host
	if host == "" {
		host = "localhost"
	}
	user := ""
	if t.u.User != nil && t.u.User.Username() != "" {
		user = t.u.User.Username() + "@"
	}
	return user + host + "/" + t.Name
}

// url returns the URL for database db, without the password.
func (t *Target) url(db string) string {
	u := *t.u
	u.Path = "/" + db
	u.RawPath = ""
	return u.String()
}

// connString returns the URL for database db with the password, for pgx only.
func (t *Target) connString(db string) string {
	u := *t.u
	u.Path = "/" + db
	u.RawPath = ""
	if t.password != "" {
		u.User = url.UserPassword(u.User.Username(), t.password)
	}
	return u.String()
}

// env is the environment for pg_dump and psql: ours, with the password.
func (t *Target) env() []string {
	env := os.Environ()
	if t.password != "" {
		env = append(env, "PGPASSWORD="+t.password)
	}
	return env
}

// Connect opens a pgx connection to database db on the target's server.
func (t *Target) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(t.connString(db))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL %s: %w", t.redactedFor(db), err)
	}
	return conn, nil
}

func (t *Target) redactedFor(db string) string {
	c := *t
	c.Name = db
	return c.String()
}

// Ping checks that the database accepts connections.
func (t *Target) Ping(ctx context.Context) error {
	conn, err := t.Connect(ctx, t.Name)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping PostgreSQL %s: %w", t, err)
	}
	return nil
}
