package api

import (
	"encoding/json"
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

// What a web page open in a browser on the host can send is refused before
// anything runs (Temporal is nil: a handler that ran would panic), with a
// JSON reason and a 4xx code: a no-cors POST (text/plain, no preflight), a
// cross-site Origin or Sec-Fetch-Site, a rebinding DNS name, and a restore
// without the token.
func TestBrowserForgeriesAreRefused(t *testing.T) {
	s := &Server{RestoreToken: "restore-secret", Address: "127.0.0.1:8000"}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	restore := `{"archive": "20251223_020000", "confirm": true}`
	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		want                     int
	}{
		{"no-cors text/plain restore", "POST", "/api/system/restore", restore,
			map[string]string{"Content-Type": "text/plain;charset=UTF-8", "Authorization": "Bearer restore-secret"}, 415},
		{"form backup", "POST", "/api/system/backup", "a=b", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415},
		{"cross-site origin", "POST", "/api/system/backup", "", map[string]string{"Origin": "https://evil.example"}, 403},
		{"null origin", "POST", "/api/system/backup", "", map[string]string{"Origin": "null"}, 403},
		{"another local origin", "POST", "/api/system/backup", "", map[string]string{"Origin": "http://127.0.0.1:9999"}, 403},
		{"cross-site fetch", "POST", "/api/system/backup", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"rebinding host, read", "GET", "/api/system/backups", "", map[string]string{"Host": "rebind.evil.example:8000"}, 421},
		{"rebinding host, restore", "POST", "/api/system/restore", restore,
			map[string]string{"Host": "rebind.evil.example", "Content-Type": "application/json", "Authorization": "Bearer restore-secret"}, 421},
		{"restore without token", "POST", "/api/system/restore", restore, map[string]string{"Content-Type": "application/json"}, 401},
		{"restore with a wrong token", "POST", "/api/system/restore", restore,
			map[string]string{"Content-Type": "application/json", "Authorization": "Bearer restore-secreT"}, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			for k, v := range tc.header {
				if k == "Host" {
					req.Host = v
					continue
				}
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.want || body["error"] == nil {
				t.Fatalf("%d %v, want %d with a reason", resp.StatusCode, body, tc.want)
			}
		})
	}
}

// A restore needs a token even when the API has none: without a generated
// one, every restore is refused.
func TestRestoreWithoutAnyTokenIsRefused(t *testing.T) {
	srv := httptest.NewServer((&Server{}).Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api/system/restore", "application/json", strings.NewReader(`{"archive": "x", "confirm": true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("restore: %d", resp.StatusCode)
	}
}

// The generated restore token is kept (mode 0600) and the same on the next
// start.
func TestEnsureRestoreToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	tok, path, err := EnsureRestoreToken(dir)
	if err != nil || len(tok) != 64 {
		t.Fatalf("token %q %v", tok, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file %v %v", st.Mode(), err)
	}
	again, _, err := EnsureRestoreToken(dir)
	if err != nil || again != tok {
		t.Fatalf("second start: %q %v", again, err)
	}
}

// The request decoder never panics, and what it accepts is one object with
// an archive and an explicit confirm or dry run.
func FuzzDecodeRestore(f *testing.F) {
	f.Add(`{"archive": "20251223_020000", "confirm": true}`)
	f.Add(`{"archive": "../../etc", "dry_run": true}`)
	f.Add(`{"archive": "x", "confirm": true}{"archive": "y"}`)
	f.Add(`{"archive": "x", "confirm": true, "extra": 1}`)
	f.Fuzz(func(t *testing.T, body string) {
		req, code, err := decodeRestore(strings.NewReader(body))
		if err != nil {
			if code < 400 || code >= 500 {
				t.Fatalf("refusal with status %d", code)
			}
			return
		}
		if req.Archive == "" || (!req.Confirm && !req.DryRun) {
			t.Fatalf("accepted %+v from %q", req, body)
		}
	})
}
