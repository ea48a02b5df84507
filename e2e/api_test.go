package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The worker's own HTTP API against real workflows on the embedded server:
// the documented curl with a token, each endpoint, the metrics after a
// backup, and a webhook notification when a backup fails.
func TestHTTPAPI(t *testing.T) {
	var mu sync.Mutex
	var hooks []map[string]any
	webhook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		hooks = append(hooks, m)
		mu.Unlock()
	}))
	defer webhook.Close()

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	const token = "s3cret-api-token"
	s := newSystem(t, "VULCAN_API_ADDR="+addr, "VULCAN_API_TOKEN="+token, "VULCAN_NOTIFY_URL="+webhook.URL+"/hook?key=abc")
	makeStorage(t, s.root, 1)
	s.start()
	base := "http://" + addr

	call := func(method, path, tok, body string) (int, map[string]any, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(raw, &m)
		return resp.StatusCode, m, string(raw)
	}

	if code, _, _ := call("GET", "/healthz", "", ""); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, m, _ := call("GET", "/readyz", "", ""); code != 200 || m["temporal"] != "ok" || m["backup_dir"] != "ok" {
		t.Fatalf("readyz %d %v", code, m)
	}
	for _, tok := range []string{"", "wrong"} {
		for _, ep := range [][2]string{{"POST", "/api/system/backup"}, {"GET", "/api/system/backups"}, {"GET", "/metrics"}, {"POST", "/api/system/restore"}} {
			if code, m, _ := call(ep[0], ep[1], tok, ""); code != 401 || m["error"] == nil {
				t.Errorf("%s %s with token %q: %d %v, want 401 with a JSON error", ep[0], ep[1], tok, code, m)
			}
		}
	}

	// The documented trigger: curl -X POST .../api/system/backup, with the token.
	code, m, raw := call("POST", "/api/system/backup", token, "")
	if code != 202 || m["workflow_id"] == nil || m["run_id"] == nil {
		t.Fatalf("start backup: %d %s", code, raw)
	}
	op := waitOperation(t, call, token, m["workflow_id"].(string))
	if op["status"] != "completed" {
		t.Fatalf("backup operation %v", op)
	}
	id := op["result"].(map[string]any)["id"].(string)
	if p := op["progress"].(map[string]any); p["state"] != "completed" {
		t.Fatalf("progress %v", p)
	}

	code, m, raw = call("GET", "/api/system/backups", token, "")
	list, _ := m["backups"].([]any)
	if code != 200 || len(list) != 1 || list[0].(map[string]any)["id"] != id || list[0].(map[string]any)["verified"] != true {
		t.Fatalf("list: %d %s", code, raw)
	}
	if code, m, raw = call("GET", "/api/system/backups/"+id, token, ""); code != 200 || m["id"] != id || m["archive"] == nil {
		t.Fatalf("get backup: %d %.300s", code, raw)
	}
	if code, _, _ = call("GET", "/api/system/backups/20000101_000000", token, ""); code != 404 {
		t.Fatalf("unknown backup: %d", code)
	}
	if code, _, _ = call("GET", "/api/system/operations/no-such-workflow", token, ""); code != 404 {
		t.Fatalf("unknown operation: %d", code)
	}

	// Restore: confirmation required, bodies bounded, a dry run goes through.
	if code, m, _ = call("POST", "/api/system/restore", token, `{"archive": "`+id+`"}`); code != 400 || !strings.Contains(fmt.Sprint(m["error"]), "confirm") {
		t.Fatalf("restore without confirm: %d %v", code, m)
	}
	if code, _, _ = call("POST", "/api/system/restore", token, `{"archive": "`+strings.Repeat("x", 100<<10)+`", "confirm": true}`); code != 413 {
		t.Fatalf("oversized body: %d", code)
	}
	code, m, raw = call("POST", "/api/system/restore", token, `{"archive": "`+id+`", "dry_run": true}`)
	if code != 202 {
		t.Fatalf("dry-run restore: %d %s", code, raw)
	}
	if op := waitOperation(t, call, token, m["workflow_id"].(string)); op["status"] != "completed" {
		t.Fatalf("dry-run restore %v", op)
	}
	code, m, raw = call("POST", "/api/system/restore", token, `{"archive": "`+id+`", "confirm": true}`)
	if code != 202 {
		t.Fatalf("restore: %d %s", code, raw)
	}
	if op := waitOperation(t, call, token, m["workflow_id"].(string)); op["status"] != "completed" {
		t.Fatalf("restore %v", op)
	}

	// A failing backup: the configured path is gone.
	os.RemoveAll(filepath.Join(s.root, "storage"))
	code, m, _ = call("POST", "/api/system/backup", token, "")
	if code != 202 {
		t.Fatalf("start failing backup: %d", code)
	}
	if op := waitOperation(t, call, token, m["workflow_id"].(string)); op["status"] != "failed" || !strings.Contains(fmt.Sprint(op["error"]), "storage") {
		t.Fatalf("failing backup operation %v", op)
	}
	var hook map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for hook == nil && time.Now().Before(deadline) {
		mu.Lock()
		for _, h := range hooks {
			if h["status"] == "failed" {
				hook = h
			}
		}
		mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	if hook == nil || hook["operation"] != "backup" || hook["step"] != "archive" || !strings.Contains(fmt.Sprint(hook["text"]), "FAILED") ||
		hook["workflow_id"] != m["workflow_id"] {
		t.Fatalf("webhook got %v", hook)
	}
	mu.Lock()
	for _, h := range hooks {
		if h["status"] != "failed" {
			t.Errorf("a success was notified without VULCAN_NOTIFY_ON_SUCCESS: %v", h)
		}
	}
	mu.Unlock()

	_, _, metrics := call("GET", "/metrics", token, "")
	for _, want := range []string{
		`vulcan_backup_last_success_timestamp_seconds{kind="manual"}`,
		`vulcan_backup_last_success_timestamp_seconds{kind="emergency"}`,
		`vulcan_operation_failures_total{operation="backup",step="archive"} 1`,
		`vulcan_backup_duration_seconds_count`, `vulcan_backup_size_bytes`, `vulcan_backup_files`,
		`vulcan_restore_duration_seconds_count 1`, `vulcan_backups_retained`,
		`temporal_workflow_completed`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", metrics)
	}
}

func waitOperation(t *testing.T, call func(method, path, tok, body string) (int, map[string]any, string), token, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, m, raw := call("GET", "/api/system/operations/"+id, token, "")
		if code != 200 {
			t.Fatalf("operation %s: %d %s", id, code, raw)
		}
		if m["status"] != "running" {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s still running", id)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Without a configured token the API serves loopback: the documented
// `curl -X POST .../api/system/backup` works, a restore needs the token the
// worker generated into its state directory (mode 0600), and what a web page
// could send is refused and changes nothing.
func TestHTTPAPIWithoutToken(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s := newSystem(t, "VULCAN_API_ADDR="+addr, "VULCAN_API_TOKEN=")
	makeStorage(t, s.root, 1)
	s.start()
	b := s.backup()
	base := "http://" + addr
	post := func(path, contentType, body string, header ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(header); i += 2 {
			if header[i] == "Host" {
				req.Host = header[i+1]
			} else {
				req.Header.Set(header[i], header[i+1])
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	tokenFile := filepath.Join(s.root, ".vulcan", "api-token")
	st, err := os.Stat(tokenFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("restore token file: %v %v", st, err)
	}
	if !strings.Contains(s.logs.String(), tokenFile) && !strings.Contains(s.logs.String(), "api-token") {
		t.Error("the worker does not say where the restore token is")
	}
	data, _ := os.ReadFile(tokenFile)
	token := strings.TrimSpace(string(data))
	restore := `{"archive": "` + b.Result.ID + `", "confirm": true}`
	for _, c := range []struct {
		name              string
		contentType, body string
		header            []string
		want              int
	}{
		{"no-cors text/plain", "text/plain;charset=UTF-8", restore, []string{"Authorization", "Bearer " + token}, 415},
		{"cross-site origin", "application/json", restore, []string{"Origin", "http://evil.example", "Authorization", "Bearer " + token}, 403},
		{"rebinding host", "application/json", restore, []string{"Host", "evil.example:80", "Authorization", "Bearer " + token}, 421},
		{"no token", "application/json", restore, nil, 401},
	} {
		if code, raw := post("/api/system/restore", c.contentType, c.body, c.header...); code != c.want || !strings.Contains(raw, "error") {
			t.Errorf("%s: %d %s, want %d", c.name, code, raw, c.want)
		}
	}
	if n := backupCount(t, s); n != 1 {
		t.Fatalf("%d backups: a refused restore took an emergency backup", n)
	}
	// curl -X POST http://127.0.0.1:8000/api/system/backup
	if code, raw := post("/api/system/backup", "", ""); code != 202 {
		t.Fatalf("backup without a token on loopback: %d %s", code, raw)
	}
	if code, raw := post("/api/system/restore", "application/json", `{"archive": "`+b.Result.ID+`", "dry_run": true}`, "Authorization", "Bearer "+token); code != 202 && code != 409 {
		t.Fatalf("restore with the generated token: %d %s", code, raw)
	}
}
