package pgdump

import (
	"slices"
	"testing"
)

func TestSplitGUCList(t *testing.T) {
	for in, want := range map[string][]string{
		`"$user", public`:       {"$user", "public"},
		`a,"b,c" , d`:           {"a", "b,c", "d"},
		`"say ""hi"""`:          {`say "hi"`},
		`public`:                {"public"},
		``:                      nil,
		`"Mixed Case", pg_temp`: {"Mixed Case", "pg_temp"},
	} {
		if got := splitGUCList(in); !slices.Equal(got, want) {
			t.Errorf("splitGUCList(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSetClause(t *testing.T) {
	for in, want := range map[string]string{
		"work_mem=7MB":                "SET work_mem TO '7MB'",
		`search_path="$user", public`: `SET search_path TO '$user', 'public'`,
		"application_name=it's":       "SET application_name TO 'it''s'",
		"statement_timeout=0":         "SET statement_timeout TO '0'",
		"vulcan.custom=a=b":           "SET vulcan.custom TO 'a=b'",
	} {
		got, err := setClause(in)
		if err != nil || got != want {
			t.Errorf("setClause(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"no-equals", "bad name;DROP=1", "=x"} {
		if _, err := setClause(bad); err == nil {
			t.Errorf("setClause(%q) accepted", bad)
		}
	}
}
