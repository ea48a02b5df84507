package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

// chromium returns the headless browser, or skips (fails in CI): make test
// installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testutil.Need(t, "the browser tests need chromium (scripts/browser.sh installs it)")
	return ""
}

// A web page open in a real browser on the host (headless Chromium) tries
// what DESIGN.md §10 forbids against the tokenless loopback API: no-cors
// POSTs of a restore (as text/plain, no preflight) and of a backup. The
// worker refuses each (its log says why) and no workflow starts.
func TestBrowserPageCannotUseTheAPI(t *testing.T) {
	browser := chromium(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s := newSystem(t, "VULCAN_API_ADDR="+addr, "VULCAN_API_TOKEN=")
	makeStorage(t, s.root, 1)
	s.start()
	b := s.backup()

	results := make(chan string, 1)
	page := `<!doctype html><title>cats</title><script>
const api = "http://` + addr + `";
const body = JSON.stringify({archive: "` + b.Result.ID + `", confirm: true});
Promise.allSettled([
  fetch(api + "/api/system/restore", {method: "POST", mode: "no-cors", body}),
  fetch(api + "/api/system/restore", {method: "POST", mode: "no-cors", body, headers: {"Content-Type": "text/plain"}}),
  fetch(api + "/api/system/backup", {method: "POST", mode: "no-cors"}),
]).then(r => fetch("/done", {method: "POST", body: JSON.stringify(r.map(x => x.status))}));
</script>`
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/done" {
			data, _ := io.ReadAll(r.Body)
			select {
			case results <- string(data):
			default:
			}
			return
		}
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	}))
	defer evil.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=15000", "--dump-dom", evil.URL)
	out, err := cmd.CombinedOutput()
	var got string
	select {
	case got = <-results:
	case <-time.After(30 * time.Second):
		t.Fatalf("the page did not run its requests (chromium: %v)\n%s", err, out)
	}
	if strings.Count(got, "fulfilled") != 3 {
		t.Fatalf("the page's requests: %s", got)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if strings.Count(s.logs.String(), "API request refused") >= 3 {
			break
		}
	}
	c := s.temporalClient(t)
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range resp.Executions {
		if e.Execution.WorkflowId != b.WorkflowID {
			t.Errorf("the page started workflow %s (%s)", e.Execution.WorkflowId, e.Type.Name)
		}
	}
	if n := strings.Count(s.logs.String(), "API request refused"); n < 3 {
		t.Errorf("the worker logged %d refusals, want one for each of the page's 3 requests", n)
	}
}
