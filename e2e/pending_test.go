package e2e

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

// pgGate stands between the worker and PostgreSQL: while closed nothing
// listens on its port (connection refused, as for a server that is down);
// opened, it forwards every connection to the real server.
type pgGate struct {
	port, target string
	mu           sync.Mutex
	ln           net.Listener
}

func (g *pgGate) open(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+g.port)
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", g.target)
				if err != nil {
					return
				}
				defer out.Close()
				go io.Copy(out, in)
				io.Copy(in, out)
			}()
		}
	}()
}

// A backup while PostgreSQL is down does not fail: the dump step stays
// pending, retried, its error visible through the API the Web UI reads.
// Once PostgreSQL is back, `starter retry` runs the step again at once and
// the backup completes as the same workflow; no other backup was started.
func TestBackupWaitsPendingWhileTheDatabaseIsDown(t *testing.T) {
	t.Parallel() // its own root, server, ports and database
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 50)
	gate := &pgGate{port: strconv.Itoa(freePort(t)), target: "127.0.0.1:5432"}
	gated := strings.Replace(dbURL, "127.0.0.1:5432", "127.0.0.1:"+gate.port, 1)
	s := newSystem(t, "DATABASE_URL="+gated)
	s.setEnv("VULCAN_RETRY_WINDOW", "1h")
	makeStorage(t, s.root, 1)
	s.start()
	c := s.temporalClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	out := s.mustStarter("backup", "--detach")
	id := workflowIDIn(t, out)
	waitFor(t, 2*time.Minute, "the dump step pending after failed attempts", func() bool {
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return false
		}
		for _, p := range d.GetPendingActivities() {
			if p.GetActivityType().GetName() == wf.DumpDatabaseActivity && p.GetAttempt() >= 3 &&
				strings.Contains(p.GetLastFailure().GetMessage(), "connect") {
				return true
			}
		}
		return false
	})
	gate.open(t)
	out = s.mustStarter("retry", id)
	if !strings.Contains(out, "completed") {
		t.Fatalf("retry: %s", out)
	}
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: `WorkflowType = "` + wf.BackupWorkflowName + `"`})
	if err != nil || len(resp.GetExecutions()) != 1 {
		t.Fatalf("backup workflows: %d (%v), want the one", len(resp.GetExecutions()), err)
	}
	if list := s.mustStarter("list"); !strings.Contains(list, "manual") {
		t.Fatalf("no manual backup listed:\n%s", list)
	}
}
