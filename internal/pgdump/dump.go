package pgdump

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// DumpResult describes a finished dump.
type DumpResult struct {
	SHA256        string
	Size          int64
	ServerVersion string
	Snapshot      string
	Tables        []manifest.TableCount
}

// Dump writes a plain-SQL dump of the target database to w. It exports a
// snapshot in a repeatable-read transaction, counts every table's rows in
// that snapshot, and runs pg_dump on the same snapshot. progress, if set, is
// called with the bytes written so far every MiB.
func Dump(ctx context.Context, t *Target, w io.Writer, progress func(int64)) (*DumpResult, error) {
	conn, err := t.Connect(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	res := &DumpResult{}
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&res.ServerVersion); err != nil {
		return nil, fmt.Errorf("dump %s: server version: %w", t, err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("dump %s: begin snapshot transaction: %w", t, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&res.Snapshot); err != nil {
		return nil, fmt.Errorf("dump %s: export snapshot: %w", t, err)
	}
	res.Tables, err = RowCounts(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", t, err)
	}

	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, h), progressCounter: newProgressCounter(progress)}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "pg_dump", // #nosec G204 -- a fixed tool (pg_dump, psql, docker, systemctl) or the operator's own configured command; arguments are not a shell string
		"--format=plain", "--no-owner", "--clean", "--if-exists", "--quote-all-identifiers",
		"--snapshot="+res.Snapshot, "--dbname="+t.url(t.Name))
	cmd.Env = t.env()
	cmd.Stdout = cw
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 8 << 10}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("pg_dump %s: %w: %s", t, err, strings.TrimSpace(stderr.String()))
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("dump %s: end snapshot transaction: %w", t, err)
	}
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	res.Size = cw.n
	return res, nil
}

// Querier runs queries; both *pgx.Conn and pgx.Tx are one.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// RowCounts counts the rows of every ordinary user table, sorted by
// schema-qualified name.
func RowCounts(ctx context.Context, q Querier) ([]manifest.TableCount, error) {
	rows, err := q.Query(ctx, `
		SELECT n.nspname, c.relname
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r'
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
		ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var names [][2]string
	for rows.Next() {
		var schema, table string
		if err := rows.Scan(&schema, &table); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		names = append(names, [2]string{schema, table})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	out := make([]manifest.TableCount, 0, len(names))
	for _, n := range names {
		var count int64
		if err := q.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{n[0], n[1]}.Sanitize()).Scan(&count); err != nil {
			return nil, fmt.Errorf("count rows of %s.%s: %w", n[0], n[1], err)
		}
		out = append(out, manifest.TableCount{Table: n[0] + "." + n[1], Rows: count})
	}
	return out, nil
}

// CompareCounts describes how got differs from want, or returns "".
func CompareCounts(want, got []manifest.TableCount) string {
	have := make(map[string]int64, len(got))
	for _, g := range got {
		have[g.Table] = g.Rows
	}
	var diffs []string
	for _, w := range want {
		n, ok := have[w.Table]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("table %s is missing", w.Table))
		case n != w.Rows:
			diffs = append(diffs, fmt.Sprintf("table %s has %d rows, the backup %d", w.Table, n, w.Rows))
		}
	}
	return strings.Join(diffs, "; ")
}

// progressCounter counts bytes and reports them every MiB. Several readers
// or writers may share one (the sessions of a parallel load).
type progressCounter struct {
	mu       sync.Mutex
	n, last  int64
	progress func(int64)
}

func newProgressCounter(progress func(int64)) *progressCounter {
	return &progressCounter{progress: progress}
}

func (c *progressCounter) add(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += int64(n)
	if c.progress != nil && c.n-c.last >= 1<<20 {
		c.last = c.n
		c.progress(c.n)
	}
}

type countingWriter struct {
	w io.Writer
	*progressCounter
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.add(n)
	return n, err
}

// limitedBuffer keeps the first max bytes of a tool's stderr for the error message.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// DumpToFile dumps into a new file at name (mode 0600), fsynced. The caller
// renames it into place.
func DumpToFile(ctx context.Context, t *Target, name string, progress func(int64)) (*DumpResult, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return nil, fmt.Errorf("create dump file: %w", err)
	}
	res, err := Dump(ctx, t, fsutil.NewWritebackWriter(f), progress)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name) // #nosec G104 -- best-effort removal of a temporary file; the error that matters is returned
		return nil, err
	}
	return res, nil
}
