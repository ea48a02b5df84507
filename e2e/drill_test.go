package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/project-vulcan/vulcan-backup/internal/lowprio"
	"github.com/project-vulcan/vulcan-backup/internal/notify"
	"github.com/project-vulcan/vulcan-backup/internal/testutil"
	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

// drillLeftovers lists drill scratch roots under root.
func drillLeftovers(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".vulcan-drill-") {
			found = append(found, e.Name())
		}
	}
	return found
}

// `starter drill` restores the newest verified backup into scratch space,
// runs the operator's check there, writes its report with every phase, and
// leaves nothing behind; the live tree and database are untouched and the
// application was never stopped. Over the objective it is a warning naming
// the slowest phase. A failing check fails the drill; so does a damaged
// backup, at validation; both clean up.
func TestRestoreDrill(t *testing.T) {
	t.Parallel() // its own root, server, ports and database
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 300)
	var mu sync.Mutex
	var hooks []notify.Message
	webhook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m notify.Message
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		hooks = append(hooks, m)
		mu.Unlock()
	}))
	defer webhook.Close()
	s := newSystem(t, "DATABASE_URL="+dbURL, "VULCAN_RTO=1ms", "VULCAN_NOTIFY_URL="+webhook.URL)
	s.env = append(s.env, execServices(s.root)...)
	checked := filepath.Join(s.root, "checked")
	s.setEnv("VULCAN_DRILL_CHECK", `test -d "$VULCAN_DRILL_ROOT/storage/logs" && psql "$VULCAN_DRILL_DATABASE_URL" -tAc "SELECT count(*) FROM accounts" > `+checked)
	makeStorage(t, s.root, 2)
	os.WriteFile(filepath.Join(s.root, "app.running"), nil, 0o644)
	s.start()
	b := s.backup()
	liveTree, liveDB := treeDigest(t, filepath.Join(s.root, "storage")), testutil.Fingerprint(t, dbURL)

	out := s.mustStarter("drill", "--json")
	var res struct {
		Result wf.DrillReport `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("drill --json: %v\n%s", err, out)
	}
	r := res.Result
	if !r.Passed || r.BackupID != b.Result.ID || !r.Loaded || r.Files == 0 {
		t.Fatalf("report %+v", r)
	}
	for _, phase := range []string{"validate and extract", "load", "verify", "check"} {
		if _, ok := r.Phases[phase]; !ok {
			t.Errorf("no %q phase in %v", phase, r.Phases)
		}
	}
	if r.WithinRTO || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "slowest phase was "+r.Slowest) {
		t.Errorf("a drill over a 1 ms objective: within %v, warnings %v", r.WithinRTO, r.Warnings)
	}
	if n, err := os.ReadFile(checked); err != nil || strings.TrimSpace(string(n)) == "" || strings.TrimSpace(string(n)) == "0" {
		t.Errorf("the operator's check did not run against the scratch database: %q %v", n, err)
	}
	// The Web UI finds it by its search attributes, as other operations.
	c := s.temporalClient(t)
	query := `VulcanOperation = "drill" AND VulcanBackupID = "` + b.Result.ID + `" AND VulcanState = "` + wf.StateCompleted + `"`
	found := 0
	for deadline := time.Now().Add(20 * time.Second); found == 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatal(err)
		}
		found = len(resp.GetExecutions())
	}
	if found == 0 {
		t.Fatalf("no drill found by %s", query)
	}
	checkDrillRanLow(t, s, c, query)
	data, err := os.ReadFile(filepath.Join(s.root, "backups", "drills", r.DrillID+".json"))
	var onDisk wf.DrillReport
	if err != nil || json.Unmarshal(data, &onDisk) != nil || onDisk.DrillID != r.DrillID || len(onDisk.Phases) != 4 {
		t.Fatalf("report file: %v\n%s", err, data)
	}
	if l := drillLeftovers(t, s.root); len(l) > 0 {
		t.Errorf("left after the drill: %v", l)
	}
	if n := testutil.Psql(t, dbURL, "-tAc", "SELECT count(*) FROM pg_database WHERE datname LIKE current_database() || '\\_drill\\_%'"); strings.TrimSpace(n) != "0" {
		t.Errorf("%s scratch databases left", n)
	}
	diffDigests(t, "live storage after the drill", liveTree, treeDigest(t, filepath.Join(s.root, "storage")))
	diffDigests(t, "live database after the drill", liveDB, testutil.Fingerprint(t, dbURL))
	if svc, _ := os.ReadFile(filepath.Join(s.root, "services.log")); strings.Contains(string(svc), "stop") {
		t.Errorf("the drill stopped the application: %q", svc)
	}

	if list := s.mustStarter("list"); !strings.Contains(list, "passed") || !strings.Contains(list, "over RTO") {
		t.Errorf("list does not show the drill:\n%s", list)
	}
	if st := s.mustStarter("status"); !strings.Contains(st, "drill:     "+r.DrillID+" of backup "+b.Result.ID) {
		t.Errorf("status does not show the last drill:\n%s", st)
	}

	// A check that fails fails the drill.
	s.stop()
	s.setEnv("VULCAN_DRILL_CHECK", "echo smoke test failed; exit 3")
	s.start()
	_, errOut, code := s.starter("drill")
	if code == 0 || !strings.Contains(errOut, "operator check failed") {
		t.Fatalf("drill with a failing check: exit %d\n%s", code, errOut)
	}

	// A damaged archive fails at validation.
	archive := filepath.Join(s.root, b.Result.Archive)
	f, _ := os.OpenFile(archive, os.O_RDWR, 0)
	f.WriteAt([]byte("damage"), 4096)
	f.Close()
	_, errOut, code = s.starter("drill", b.Result.ID)
	if code == 0 || !strings.Contains(errOut, "validate and extract") {
		t.Fatalf("drill of a damaged backup: exit %d\n%s", code, errOut)
	}
	// It is notified as a failed backup is.
	notified := false
	for deadline := time.Now().Add(30 * time.Second); !notified && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		for _, h := range hooks {
			if h.Operation == "drill" && h.Status == "failed" && h.BackupID == b.Result.ID && strings.Contains(h.Error, "validate and extract") {
				notified = true
			}
		}
		mu.Unlock()
	}
	if !notified {
		mu.Lock()
		t.Errorf("the failed drill of the damaged backup was not notified; the webhook got %+v", hooks)
		mu.Unlock()
	}
	if l := drillLeftovers(t, s.root); len(l) > 0 {
		t.Errorf("left after failed drills: %v", l)
	}
}

// checkDrillRanLow checks that the restore and verify steps of the drill
// query finds ran in the drill worker, a child of the worker whose every
// thread is at nice 19 and the lowest best-effort I/O level, and that the
// other steps ran in the worker itself.
func checkDrillRanLow(t *testing.T, s *system, c client.Client, query string) {
	t.Helper()
	ctx := context.Background()
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
	if err != nil || len(resp.GetExecutions()) == 0 {
		t.Fatalf("list %s: %v", query, err)
	}
	e := resp.GetExecutions()[0].GetExecution()
	h := history(ctx, t, c, e.GetWorkflowId(), e.GetRunId())
	names := map[int64]string{}
	ranBy := map[string]string{}
	for _, ev := range h.Events {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			names[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			ranBy[names[a.GetScheduledEventId()]] = a.GetIdentity()
		}
	}
	for _, name := range []string{wf.DrillRestoreActivity, wf.DrillVerifyActivity} {
		id := ranBy[name]
		pid, err := strconv.Atoi(strings.SplitN(id, "@", 2)[0])
		if err != nil || !strings.HasSuffix(id, "@drill-worker") {
			t.Errorf("%s ran on %q, not on the drill worker", name, id)
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Errorf("drill worker %d: %v", pid, err)
			continue
		}
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); f[1] != strconv.Itoa(s.cmd.Process.Pid) {
			t.Errorf("drill worker %d is a child of %s, not of the worker %d", pid, f[1], s.cmd.Process.Pid)
		}
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, task := range tasks {
			tid, _ := strconv.Atoi(task.Name())
			nice, class, level, err := lowprio.Of(tid)
			if err != nil || nice != lowprio.Nice || class != lowprio.IOClassBestEffort || level != lowprio.IOLevel {
				t.Errorf("drill worker thread %d: nice %d, I/O class %d level %d (%v)", tid, nice, class, level, err)
			}
		}
	}
	for _, name := range []string{wf.DrillPrepareActivity, wf.DrillCleanActivity, wf.DrillReportActivity} {
		if strings.HasSuffix(ranBy[name], "@drill-worker") {
			t.Errorf("%s ran on the drill worker: it is the worker's", name)
		}
	}
	if nice, _, _, err := lowprio.Of(s.cmd.Process.Pid); err != nil || nice == lowprio.Nice {
		t.Errorf("the worker itself runs at nice %d (%v)", nice, err)
	}
}
