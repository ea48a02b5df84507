package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

// browse opens a headless Chromium driven over the DevTools protocol.
func browse(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.WindowSize(1400, 1500),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// pageText loads url and returns the page's text once it contains every
// one of want (or, after a minute, whatever it shows).
func pageText(t *testing.T, ctx context.Context, url string, want ...string) string {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	var text string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText"))
		if err != nil {
			continue
		}
		text = got
		missing := false
		for _, w := range want {
			missing = missing || !strings.Contains(text, w)
		}
		if !missing {
			break
		}
	}
	return text
}

// screenshot writes the page as docs/<name>.png when VULCAN_RECORD_SCREENSHOTS
// is set (the README's pictures), and always under the test's directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := t.TempDir()
	if os.Getenv("VULCAN_RECORD_SCREENSHOTS") != "" {
		dir = filepath.Join("..", "docs")
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// visible clicks the first visible element (button, link, tab or menu
// item) whose text is label, or starts with it when prefix is set.
func clickVisible(t *testing.T, ctx context.Context, label string, prefix bool) {
	t.Helper()
	match := "e.innerText.trim() === label"
	if prefix {
		match = "e.innerText.trim().startsWith(label)"
	}
	js := `((label) => { const e = [...document.querySelectorAll('button,a,[role=menuitem],[role=option],li')].find(e => e.offsetParent !== null && e.innerText && ` + match + `); if (!e) return false; e.click(); return true })(` + strconvQuote(label) + `)`
	var ok bool
	for deadline := time.Now().Add(30 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		ok, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](js))
	}
	if !ok {
		t.Fatalf("nothing visible to click labelled %q", label)
	}
	time.Sleep(time.Second) // the UI's transition
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// currentDetails is the text of the workflow's current details, which the
// UI renders from Markdown in a frame of its own.
func currentDetails(t *testing.T, ctx context.Context, want string) string {
	t.Helper()
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		got, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('iframe')].map(f => f.contentDocument ? f.contentDocument.body.innerText : '').join('\n')`))
		if strings.Contains(got, want) {
			break
		}
	}
	return got
}

// An operator with only the Web UI (a real headless Chromium on the
// embedded UI) sees a backup's steps and a restore's seven steps by their
// summaries, and for a restore that waits, the current details with the
// error and the choices; fixes the cause and sends the Update decide retry
// from the UI's own dialog; and the restore completes with no rollback. The
// test takes the README's screenshots (written to docs/ with
// VULCAN_RECORD_SCREENSHOTS=1).
func TestWebUIIsTheOperatorsConsole(t *testing.T) {
	t.Parallel() // its own root, server, ports and database
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 100)
	uiPort := freePort(t)
	s := newSystem(t, "DATABASE_URL="+dbURL, "VULCAN_HEALTH_TIMEOUT=1s")
	s.setEnv("VULCAN_UI_PORT", fmt.Sprint(uiPort))
	down := s.unhealthyWhile("dependency.down")
	s.setEnv("VULCAN_ON_FAILURE", "ask")
	makeStorage(t, s.root, 1)
	os.WriteFile(filepath.Join(s.root, "app.running"), nil, 0o644)
	s.start()
	b := s.backup()
	ctx := browse(t)
	page := func(id string) string {
		return fmt.Sprintf("http://127.0.0.1:%d/namespaces/default/workflows/%s", uiPort, id)
	}

	steps := []string{"backup: prepare", "backup: dump database", "backup: archive", "backup: verify", "backup: commit", "backup: retention"}
	if text := pageText(t, ctx, page(b.WorkflowID), steps...); !containsAll(text, steps) {
		t.Fatalf("the backup's page lacks its steps:\n%s", text)
	}
	screenshot(t, ctx, "webui-backup")

	os.WriteFile(down, nil, 0o644)
	_, errOut, code := s.starter("restore", b.Result.Archive, "--yes")
	m := regexp.MustCompile(`starter retry (\S+)`).FindStringSubmatch(errOut)
	if code != 6 || m == nil {
		t.Fatalf("restore: exit %d\n%s", code, errOut)
	}
	id := strings.Trim(m[1], "`")
	steps = nil
	for i, name := range wf.RestoreSteps[:6] {
		if i != 1 { // step 2's activity is the load beside the emergency backup
			steps = append(steps, fmt.Sprintf("restore %d/7: %s", i+1, name))
		}
	}
	steps = append(steps, "emergency backup before a restore", "decision on step 6 (start services)")
	if text := pageText(t, ctx, page(id), steps...); !containsAll(text, steps) {
		t.Fatalf("the waiting restore's page lacks its steps:\n%s", text)
	}
	clickVisible(t, ctx, "User Metadata", false)
	details := currentDetails(t, ctx, "Restore waits for a decision")
	for _, w := range []string{"Restore waits for a decision", "Step 6/7 (start services) failed", `{"action": "retry"}`, `{"action": "rollback"}`, "starter retry " + id} {
		if !strings.Contains(strings.ReplaceAll(details, "⁄", "/"), w) {
			t.Fatalf("current details lack %q:\n%s", w, details)
		}
	}
	screenshot(t, ctx, "webui-restore-awaiting")

	// The operator fixes the cause and decides in the UI's Update dialog.
	os.Remove(down)
	clickVisible(t, ctx, "More Actions", false)
	clickVisible(t, ctx, "Send an Update", false)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const b = [...document.querySelectorAll('[data-testid=update-select-button]')].find(e => e.offsetParent !== null); if (b) b.click(); return !!b })()`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	screenshot(t, ctx, "webui-decide-dialog")
	clickVisible(t, ctx, "decide", true)
	editor, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const e = [...document.querySelectorAll('textarea,[contenteditable=true]')].find(e => e.offsetParent !== null); if (!e) return ''; e.focus(); return e.tagName + ' ' + e.className })()`))
	if err != nil || editor == "" {
		html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('[role=dialog],dialog')].map(d => d.outerHTML).join('\n').slice(0, 6000)`))
		t.Fatalf("no editor for the update's data (%v):\n%s", err, html)
	}
	tctx, cancelType := context.WithTimeout(ctx, 30*time.Second)
	err = chromedp.Do(tctx, chromedp.KeyEvent(`{"action": "retry"}`))
	cancelType()
	if err != nil {
		t.Fatalf("type the decision into %s: %v", editor, err)
	}

	clickVisible(t, ctx, "Submit", false)

	c := s.temporalClient(t)
	wctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.GetWorkflow(wctx, id, "").Get(wctx, nil); err != nil {
		t.Fatalf("after the UI's decide retry: %v", err)
	}
	if events := historyTypes(wctx, t, c, id); strings.Contains(events, wf.RollbackStorageActivity) {
		t.Fatalf("the restore rolled back: %s", events)
	}
	steps = []string{"restore 6/7: start services", "restore 7/7: verify", "remove the pre-restore copies of restore"}
	if text := pageText(t, ctx, page(id), steps...); !containsAll(text, steps) {
		t.Fatalf("the completed restore's page lacks its steps:\n%s", text)
	}
	screenshot(t, ctx, "webui-restore")
}

func containsAll(s string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}
