package webui

import "testing"

func TestRunLink(t *testing.T) {
	for _, c := range []struct{ base, ns, id, run, want string }{
		{"http://127.0.0.1:8233/", "", "vulcan-restore-1", "r1", "http://127.0.0.1:8233/namespaces/default/workflows/vulcan-restore-1/r1/history"},
		{"https://ui.example", "prod", "a b", "r", "https://ui.example/namespaces/prod/workflows/a%20b/r/history"},
		{"", "default", "x", "y", ""},
	} {
		if got := RunLink(c.base, c.ns, c.id, c.run); got != c.want {
			t.Errorf("RunLink(%q, %q, %q, %q) = %q, want %q", c.base, c.ns, c.id, c.run, got, c.want)
		}
	}
}
