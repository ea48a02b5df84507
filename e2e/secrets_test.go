package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/proto"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

// The database password never appears in the worker's log, the starter's
// output, the backup directory or any workflow history.
func TestPasswordStaysSecret(t *testing.T) {
	dbURL := testutil.NewDatabase(t)
	const password = "vulcan-test-secret" // the test role's, in dbURL
	if !strings.Contains(dbURL, password) {
		t.Fatalf("test URL does not carry the password: %s", dbURL)
	}
	testutil.LoadVulcanDB(t, dbURL, 100)
	s := newSystem(t, "DATABASE_URL="+dbURL)
	makeStorage(t, s.root, 1)
	s.start()
	b := s.backup()
	out, errOut, _ := s.starter("restore", b.Result.Archive, "--yes", "--json")
	out2, errOut2, _ := s.starter("info", b.Result.ID)
	for what, text := range map[string]string{"worker log": s.logs.String(), "starter output": out + errOut + out2 + errOut2} {
		if strings.Contains(text, password) {
			t.Errorf("the password appears in the %s", what)
		}
	}
	filepath.Walk(filepath.Join(s.root, "backups"), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && !strings.HasSuffix(p, ".tar.gz") {
			if data, _ := os.ReadFile(p); strings.Contains(string(data), password) {
				t.Errorf("the password appears in %s", p)
			}
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.temporalClient(t)
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{})
	if err != nil || len(resp.Executions) < 3 {
		t.Fatalf("workflows: %v (%d)", err, len(resp.GetExecutions()))
	}
	control := false // the backup id must be found, proving the search sees payloads
	for _, e := range resp.Executions {
		for _, ev := range history(ctx, t, c, e.Execution.WorkflowId, e.Execution.RunId).Events {
			// Binary protobuf: payloads (JSON) appear verbatim, not base64.
			data, _ := proto.Marshal(ev)
			if strings.Contains(string(data), b.Result.ID) {
				control = true
			}
			if strings.Contains(string(data), password) {
				t.Errorf("the password appears in the history of %s", e.Execution.WorkflowId)
				break
			}
		}
	}
	if !control {
		t.Fatal("the backup id was not found in any history: the search does not see payloads")
	}
}

// With the password in DATABASE_URL's query and an API token set, neither
// appears on any process's command line (watched throughout a backup, a
// restore and a failed restore), in the logs, the manifests or the recorded
// histories.
func TestSecretsStayOffCommandLinesAndHistories(t *testing.T) {
	admin := testutil.NewDatabase(t)
	inQuery, password := testutil.PasswordInQuery(t, admin)
	testutil.LoadVulcanDB(t, admin, 2000)
	const token = "api-token-never-shown-7f3a"
	s := newSystem(t, "DATABASE_URL="+inQuery, "VULCAN_API_ADDR="+fmt.Sprintf("127.0.0.1:%d", freePort(t)), "VULCAN_API_TOKEN="+token)
	makeStorage(t, s.root, 2)
	s.start()

	var mu sync.Mutex
	var seen []string
	stop := make(chan struct{})
	watched := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				watched <- n
				return
			default:
			}
			cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, p := range cmdlines {
				data, err := os.ReadFile(p)
				if err != nil {
					continue
				}
				n++
				for _, secret := range []string{password, token} {
					if strings.Contains(string(data), secret) {
						mu.Lock()
						seen = append(seen, strings.ReplaceAll(string(data), "\x00", " "))
						mu.Unlock()
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	b := s.backup()
	s.mustStarter("restore", b.Result.Archive, "--yes")
	// A failed restore: an archive damaged after its backup.
	damaged := filepath.Join(s.root, b.Result.Archive)
	data, _ := os.ReadFile(damaged)
	data[len(data)/2] ^= 0xff
	os.WriteFile(damaged, data, 0o600)
	if _, _, code := s.starter("restore", b.Result.ID, "--yes"); code != 3 {
		t.Fatalf("restore of a damaged archive: exit %d", code)
	}
	close(stop)
	n := <-watched
	t.Logf("read %d command lines, %d with a secret", n, len(seen))
	if n == 0 {
		t.Fatal("no command line was read")
	}
	for _, c := range seen {
		t.Errorf("a secret on a command line: %s", c)
	}
	for _, secret := range []string{password, token} {
		if strings.Contains(s.logs.String(), secret) {
			t.Error("a secret appears in the worker's log")
		}
		filepath.Walk(filepath.Join(s.root, "backups"), func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() && strings.HasSuffix(p, ".json") {
				if data, _ := os.ReadFile(p); strings.Contains(string(data), secret) {
					t.Errorf("a secret appears in %s", p)
				}
			}
			return nil
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.temporalClient(t)
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{})
	if err != nil || len(resp.Executions) < 4 {
		t.Fatalf("workflows: %v (%d)", err, len(resp.GetExecutions()))
	}
	for _, e := range resp.Executions {
		for _, ev := range history(ctx, t, c, e.Execution.WorkflowId, e.Execution.RunId).Events {
			data, _ := proto.Marshal(ev)
			for _, secret := range []string{password, token} {
				if strings.Contains(string(data), secret) {
					t.Errorf("a secret appears in the history of %s", e.Execution.WorkflowId)
				}
			}
		}
	}
}
