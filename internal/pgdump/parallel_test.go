package pgdump

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// synthDump is a plain dump shaped as pg_dump writes one: settings, pre-data
// entries, one COPY per table, then post-data.
func synthDump(rows map[string][]string, order []string, extraPre, extraPost string) string {
	var b strings.Builder
	b.WriteString("--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\nDROP TABLE IF EXISTS public.a;\n\n")
	for _, tb := range order {
		b.WriteString("--\n-- Name: " + tb + "; Type: TABLE; Schema: public; Owner: me\n--\n\nCREATE TABLE public." + tb + " (v text);\n\n")
	}
	b.WriteString(extraPre)
	for _, tb := range order {
		b.WriteString("--\n-- Data for Name: " + tb + "; Type: TABLE DATA; Schema: public; Owner: me\n--\n\n")
		b.WriteString("COPY public." + tb + " (v) FROM stdin;\n")
		for _, r := range rows[tb] {
			b.WriteString(r + "\n")
		}
		b.WriteString("\\.\n\n\n")
	}
	b.WriteString("--\n-- Name: " + order[0] + " pk; Type: CONSTRAINT; Schema: public; Owner: me\n--\n\nALTER TABLE ONLY public." + order[0] + " ADD CONSTRAINT pk PRIMARY KEY (v);\n\n")
	b.WriteString(extraPost)
	b.WriteString("--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n")
	return b.String()
}

func writeDump(t *testing.T, s string) (string, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dump.sql")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return path, f
}

func text(t *testing.T, f *os.File, pieces ...piece) string {
	t.Helper()
	b, err := io.ReadAll(readerOf(f, pieces...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPlanLoadSplitsTheDump(t *testing.T) {
	defer ForceSessions(2, 1000)()
	rows := map[string][]string{}
	for i := range 200 {
		rows["big"] = append(rows["big"], strings.Repeat("b", 20)+string(rune('a'+i%26)))
	}
	rows["small"] = []string{"s1", "s2"}
	rows["tiny"] = []string{"t1"}
	// A row longer than the reader's buffer whose end, read on its own,
	// looks like the end of the data ("\." once its escaped backslash is
	// cut in two).
	rows["long"] = []string{strings.Repeat("x", 256<<10-1) + `\\.`, "after"}
	dump := synthDump(rows, []string{"big", "long", "small", "tiny"}, "", "")
	path, f := writeDump(t, dump)
	p, err := planLoad(path)
	if err != nil {
		t.Fatal(err)
	}
	if h := text(t, f, p.header); !strings.HasSuffix(h, "set_config('search_path', '', false);\n\n") || !strings.Contains(h, "\\restrict abc") {
		t.Errorf("header %q", h)
	}
	if strings.Contains(text(t, f, p.header), "DROP") {
		t.Errorf("the header, which every session runs, holds the DROPs of --clean")
	}
	if pre := text(t, f, p.pre); !strings.HasPrefix(pre, "DROP TABLE IF EXISTS public.a;\n\n--\n-- Name: big; Type: TABLE;") || strings.Count(pre, "CREATE TABLE") != 4 || strings.Contains(pre, "COPY") {
		t.Errorf("pre-data %q", pre)
	}
	if post := text(t, f, p.post); !strings.HasPrefix(post, "--\n-- Name: big pk; Type: CONSTRAINT;") || !strings.HasSuffix(post, "\\unrestrict abc\n\n") {
		t.Errorf("post-data %q", post)
	}
	if len(p.data) != loadSessions {
		t.Fatalf("%d sessions, want %d", len(p.data), loadSessions)
	}
	// Every session's text is COPY blocks; together they hold every row
	// once, big's and long's shared out between the sessions.
	got := map[string][]string{}
	copies := map[string]int{}
	for i, s := range p.data {
		txt := text(t, f, s...)
		if txt == "" {
			t.Fatalf("session %d has nothing", i)
		}
		lines := strings.Split(txt, "\n")
		var table string
		for _, l := range lines {
			switch {
			case strings.HasPrefix(l, "COPY public."):
				table = strings.Fields(l)[1][len("public."):]
				copies[table]++
			case l == `\.`:
				table = ""
			case table != "":
				got[table] = append(got[table], l)
			}
		}
		if table != "" {
			t.Errorf("session %d: COPY of %s not closed", i, table)
		}
	}
	for tb, want := range rows {
		if strings.Join(got[tb], "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: rows %d, want %d", tb, len(got[tb]), len(want))
		}
	}
	if copies["big"] != loadSessions || copies["long"] != loadSessions || copies["small"] != 1 {
		t.Errorf("COPY statements per table %v: big and long should be split in %d", copies, loadSessions)
	}
}

func TestPlanLoadLeavesOtherDumpsWhole(t *testing.T) {
	defer ForceSessions(2, 1<<20)()
	two := map[string][]string{"a": {"1"}, "b": {"2"}}
	for _, c := range []struct {
		name string
		dump string
	}{
		{"one small table", synthDump(map[string][]string{"a": {"1", "2"}}, []string{"a"}, "", "")},
		{"a \\connect", synthDump(two, []string{"a", "b"}, "\\connect other\n\n", "")},
		{"a shell escape", synthDump(two, []string{"a", "b"}, "", "\\! true\n")},
		{"a COPY not closed", strings.TrimSuffix(synthDump(two, []string{"a", "b"}, "", ""), "\n") + "COPY public.a (v) FROM stdin;\n1\n"},
		{"table data after post-data", synthDump(two, []string{"a", "b"}, "", "--\n-- Data for Name: c; Type: TABLE DATA; Schema: public; Owner: me\n--\n\nCOPY public.c (v) FROM stdin;\n1\n\\.\n")},
		{"no entries", "SET x = 1;\nSELECT 1;\n"},
	} {
		path, _ := writeDump(t, c.dump)
		if _, err := planLoad(path); !errors.Is(err, errUnplanned) {
			t.Errorf("%s: %v, want errUnplanned", c.name, err)
		}
	}
	if _, err := planLoad(filepath.Join(t.TempDir(), "missing.sql")); err == nil || errors.Is(err, errUnplanned) {
		t.Errorf("a missing dump: %v, want an open error", err)
	}
	// With one session (two cores), no dump is split.
	ForceSessions(1, 1000)
	path, _ := writeDump(t, synthDump(two, []string{"a", "b"}, "", ""))
	if _, err := planLoad(path); !errors.Is(err, errUnplanned) {
		t.Errorf("one session: %v, want errUnplanned", err)
	}
}
