package pgdump

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// copyProperties gives database dst what a dump (taken with --no-owner,
// without --create) does not carry of database src: its owner, its
// privileges and its settings (ALTER DATABASE ... SET, ALTER ROLE ... IN
// DATABASE ... SET). A role that may not set them gets a permission error,
// which the caller turns into ErrRenameNotAllowed: the in-place load keeps
// them all.
func copyProperties(ctx context.Context, admin *pgx.Conn, src, dst string) error {
	stmts, err := propertyStatements(ctx, admin, src, dst)
	if err != nil {
		return fmt.Errorf("read the properties of %s: %w", src, err)
	}
	for _, stmt := range stmts {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}

// propertyStatements returns the statements that give dst src's owner,
// privileges and settings.
func propertyStatements(ctx context.Context, admin *pgx.Conn, src, dst string) ([]string, error) {
	var owner, me string
	var defaultACL bool
	err := admin.QueryRow(ctx, `SELECT pg_get_userbyid(datdba), datacl IS NULL, current_user FROM pg_database WHERE datname = $1`, src).
		Scan(&owner, &defaultACL, &me)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil // no current database: nothing to keep
	}
	if err != nil {
		return nil, err
	}
	db := "DATABASE " + ident(dst)
	var stmts []string
	if owner != me {
		stmts = append(stmts, "ALTER "+db+" OWNER TO "+ident(owner))
	}
	if !defaultACL {
		stmts = append(stmts, "REVOKE ALL ON "+db+" FROM PUBLIC")
		rows, err := admin.Query(ctx, `SELECT a.grantee = 0, COALESCE(pg_get_userbyid(NULLIF(a.grantee, 0)), ''), a.privilege_type, a.is_grantable
			FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1`, src)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var public, grantable bool
			var grantee, privilege string
			if err := rows.Scan(&public, &grantee, &privilege, &grantable); err != nil {
				rows.Close()
				return nil, err
			}
			who := "PUBLIC"
			if !public {
				who = ident(grantee)
			}
			stmt := "GRANT " + privilege + " ON " + db + " TO " + who
			if grantable {
				stmt += " WITH GRANT OPTION"
			}
			stmts = append(stmts, stmt)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	rows, err := admin.Query(ctx, `SELECT COALESCE(pg_get_userbyid(NULLIF(s.setrole, 0)), ''), unnest(s.setconfig)
		FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1`, src)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var role, setting string
		if err := rows.Scan(&role, &setting); err != nil {
			return nil, err
		}
		set, err := setClause(setting)
		if err != nil {
			return nil, err
		}
		if role == "" {
			stmts = append(stmts, "ALTER "+db+" "+set)
		} else {
			stmts = append(stmts, "ALTER ROLE "+ident(role)+" IN "+db+" "+set)
		}
	}
	return stmts, rows.Err()
}

var gucName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// listGUCs are the settings whose value is a list of names, each quoted on
// its own (as pg_dump does).
var listGUCs = map[string]bool{
	"local_preload_libraries": true, "search_path": true, "session_preload_libraries": true,
	"shared_preload_libraries": true, "temp_tablespaces": true, "unix_socket_directories": true,
}

// setClause turns one "name=value" of pg_db_role_setting into "SET name TO
// value", the value as literals.
func setClause(setting string) (string, error) {
	name, value, ok := strings.Cut(setting, "=")
	if !ok || !gucName.MatchString(name) {
		return "", fmt.Errorf("unexpected database setting %q", setting)
	}
	if !listGUCs[strings.ToLower(name)] {
		return "SET " + name + " TO " + quote(value), nil
	}
	var parts []string
	for _, e := range splitGUCList(value) {
		parts = append(parts, quote(e))
	}
	if len(parts) == 0 {
		return "SET " + name + " TO ''", nil
	}
	return "SET " + name + " TO " + strings.Join(parts, ", "), nil
}

// splitGUCList splits a list setting at the commas outside double quotes,
// removing the quotes (a doubled quote inside stands for one).
func splitGUCList(v string) []string {
	var out []string
	var cur strings.Builder
	inQuote, seen := false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"' && inQuote && i+1 < len(v) && v[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"':
			inQuote, seen = !inQuote, true
		case c == ',' && !inQuote:
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
			seen = false
		case (c == ' ' || c == '\t') && !inQuote && cur.Len() == 0:
		default:
			cur.WriteByte(c)
			seen = true
		}
	}
	if seen || cur.Len() > 0 {
		out = append(out, strings.TrimSpace(cur.String()))
	}
	return out
}
