package api

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckAddress(t *testing.T) {
	for _, tc := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:8000", "", true},
		{"[::1]:8000", "", true},
		{"localhost:8000", "", true},
		{"0.0.0.0:8000", "", false},
		{":8000", "", false},
		{"10.1.2.3:8000", "", false},
		{"0.0.0.0:8000", "t0ken", true},
		{"nonsense", "t0ken", false},
	} {
		err := CheckAddress(tc.addr, tc.token)
		if (err == nil) != tc.ok {
			t.Errorf("CheckAddress(%q, %q) = %v", tc.addr, tc.token, err)
		}
	}
}

func TestLoadToken(t *testing.T) {
	f := filepath.Join(t.TempDir(), "token")
	os.WriteFile(f, []byte("  from-file\n"), 0o600)
	if tok, err := LoadToken("", f); err != nil || tok != "from-file" {
		t.Fatalf("%q %v", tok, err)
	}
	if _, err := LoadToken("a", f); err == nil {
		t.Fatal("both set must be refused")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	if _, err := LoadToken("", empty); err == nil {
		t.Fatal("an empty token file must be refused")
	}
}

// Without the right token nothing behind auth runs (Temporal is nil here: a
// handler that ran would panic).
func TestAuthRejectsBeforeAnythingRuns(t *testing.T) {
	s := &Server{Token: "right", Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("metrics")) })}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, auth := range []string{"", "Bearer wrong", "Basic right", "Bearer right-but-longer"} {
		req, _ := http.NewRequest("POST", srv.URL+"/api/system/backup", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
			t.Errorf("auth %q: %d", auth, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer right")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics with the token: %v %v", resp, err)
	}
	resp, _ = http.Get(srv.URL + "/nope")
	if resp.StatusCode != 404 {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}
}
