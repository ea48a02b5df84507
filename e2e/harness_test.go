// Package e2e runs Vulcan Backup the way an operator does: the real worker
// and starter binaries, the embedded Temporal server, a real PostgreSQL and
// real files.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/devserver"
	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

// The binaries under test; faultWorkerBin is the worker built with the
// faultinject tag, which halts at the point named by VULCAN_FAULTPOINT.
var workerBin, starterBin, faultWorkerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vulcan-e2e-bin")
	if err != nil {
		panic(err)
	}
	workerBin, starterBin, faultWorkerBin = filepath.Join(dir, "worker"), filepath.Join(dir, "starter"), filepath.Join(dir, "worker-faultinject")
	for _, b := range []struct{ bin, pkg, tags string }{
		{workerBin, "../worker", ""}, {starterBin, "../starter", ""}, {faultWorkerBin, "../worker", "faultinject"},
	} {
		out, err := exec.Command("go", "build", "-tags", b.tags, "-o", b.bin, b.pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s (tags %q): %v\n%s", b.pkg, b.tags, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := devserver.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// system is one project root with its own worker and embedded server. By
// default the worker runs the server in-process (`worker --dev`); with split
// set the server runs alone (`worker --dev --server-only`) and the worker
// connects to it, so each can be stopped without the other.
type system struct {
	t      *testing.T
	root   string
	addr   string
	uiPort int
	env    []string
	split  bool
	// bin is the worker binary; tests of fault points use faultWorkerBin.
	bin    string
	server *proc
	cmd    *exec.Cmd
	logs   *syncBuffer
	done   chan struct{}
}

// neverCron names 31 February.
const neverCron = "0 0 31 2 *"

// proc is one running binary and its output.
type proc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newSystem prepares a root; env adds variables (DATABASE_URL, VULCAN_SERVICES, ...).
func newSystem(t *testing.T, env ...string) *system {
	t.Helper()
	s := &system{t: t, root: t.TempDir(), addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), uiPort: 0, bin: workerBin}
	s.env = append([]string{
		"TEMPORAL_ADDRESS=" + s.addr, "VULCAN_ROOT=" + s.root, "VULCAN_UI_PORT=0", "VULCAN_TASK_QUEUE=vulcan-e2e",
		"DATABASE_URL=", "VULCAN_SERVICES=none", "VULCAN_API_ADDR=", "VULCAN_NOTIFY_URL=",
		// Tests look for leftovers once a restore is done: no undo window
		// unless a test asks for one.
		"VULCAN_UNDO_WINDOW=0",
		// A failed step rolls back (or fails) at once, after its base
		// attempts, unless a test asks for the operator's decision.
		"VULCAN_ON_FAILURE=rollback", "VULCAN_RETRY_WINDOW=0",
		// A nightly backup must not start in the middle of a test that runs
		// at 02:00 UTC: the default schedule is one that never fires.
		"VULCAN_SCHEDULE=" + neverCron, "VULCAN_DRILL_SCHEDULE=" + neverCron,
	}, env...)
	return s
}

func (s *system) environ() []string {
	return append(os.Environ(), s.env...)
}

// setEnv sets or, with an empty value, removes a variable for the next start.
func (s *system) setEnv(name, value string) {
	kept := s.env[:0]
	for _, e := range s.env {
		if !strings.HasPrefix(e, name+"=") {
			kept = append(kept, e)
		}
	}
	s.env = kept
	if value != "" {
		s.env = append(s.env, name+"="+value)
	}
}

// launch runs bin in the root and waits until its output contains ready.
func (s *system) launch(bin string, args []string, ready string) *proc {
	s.t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Dir = s.root
	p.cmd.Env = s.environ()
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	s.t.Cleanup(func() { s.halt(p) })
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(p.logs.String(), ready) {
		select {
		case <-p.done:
			s.t.Fatalf("%s %v exited:\n%s", filepath.Base(bin), args, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s %v not ready:\n%s", filepath.Base(bin), args, p.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

// start runs the worker in the root and waits until it serves; in split mode
// it first starts the server if it is not running.
func (s *system) start() {
	s.t.Helper()
	args := []string{"--dev"}
	if s.split {
		if s.server == nil || s.server.exited() {
			s.startServer()
		}
		args = nil
	}
	p := s.launch(s.bin, args, "nightly schedule")
	s.cmd, s.logs, s.done = p.cmd, p.logs, p.done
	// The worker serves its HTTP API after it has set up the schedules.
	if s.getEnv("VULCAN_API_ADDR") != "" {
		waitFor(s.t, 90*time.Second, "the HTTP API", func() bool {
			l := p.logs.String()
			return strings.Contains(l, "HTTP API running") || strings.Contains(l, "HTTP API without a token")
		})
	}
}

// getEnv is the last value s.env gives name, or "".
func (s *system) getEnv(name string) string {
	v := ""
	for _, e := range s.env {
		if rest, ok := strings.CutPrefix(e, name+"="); ok {
			v = rest
		}
	}
	return v
}

// startServer runs the embedded server alone (split mode).
func (s *system) startServer() {
	s.t.Helper()
	s.server = s.launch(workerBin, []string{"--dev", "--server-only"}, "embedded Temporal server running")
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends p with SIGKILL and waits for it.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the worker with SIGTERM (SIGKILL after 20 s).
func (s *system) stop() {
	if s.cmd != nil {
		s.halt(&proc{cmd: s.cmd, logs: s.logs, done: s.done})
	}
}

// halt ends p with SIGTERM (SIGKILL after 20 s) and logs its output if the
// test failed.
func (s *system) halt(p *proc) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	if s.t.Failed() {
		s.t.Logf("%s log:\n%s", strings.Join(p.cmd.Args, " "), p.logs.String())
	}
}

// starter runs the CLI in the root and returns stdout, stderr and the exit code.
func (s *system) starter(args ...string) (string, string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, starterBin, args...)
	cmd.Dir = s.root
	cmd.Env = s.environ()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("starter %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// mustStarter runs the CLI and fails the test unless it exits 0.
func (s *system) mustStarter(args ...string) string {
	s.t.Helper()
	out, errOut, code := s.starter(args...)
	if code != 0 {
		s.t.Fatalf("starter %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	return out
}

// backupResult runs `starter backup --json` and decodes its result.
type backupJSON struct {
	WorkflowID string `json:"workflow_id"`
	Result     struct {
		ID       string   `json:"id"`
		Archive  string   `json:"archive"`
		Manifest string   `json:"manifest"`
		Database bool     `json:"database"`
		Note     string   `json:"database_note"`
		Warnings []string `json:"warnings"`
	} `json:"result"`
}

func (s *system) backup() backupJSON {
	s.t.Helper()
	var b backupJSON
	if err := json.Unmarshal([]byte(s.mustStarter("backup", "--json")), &b); err != nil {
		s.t.Fatal(err)
	}
	return b
}

// makeStorage writes a small application tree under root/storage: the
// reference generator's shapes plus unicode names, empty files and dirs, modes.
func makeStorage(t *testing.T, root string, mb int) {
	t.Helper()
	gen := filepath.Join(testutil.SharedDir(t), "bench", "mkstorage.go")
	out, err := exec.Command("go", "run", gen, "-out", root, "-mb", fmt.Sprint(mb)).CombinedOutput()
	if err != nil {
		t.Fatalf("mkstorage: %v\n%s", err, out)
	}
	extra := map[string]string{
		"storage/logs/ünïcødé ✓ 日本.log":       "héllo\n",
		"storage/logs/empty.log":              "",
		"storage/verification/deep/a/b/c.txt": "deep\n",
	}
	for p, c := range extra {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "storage/chroma/empty-collection"), 0o700)
	os.Symlink("../logs/app-000.log", filepath.Join(root, "storage/chroma/latest.log"))
}

// treeDigest describes every entry under dir: type, mode, content hash, link.
func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	d := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, _ := e.Info()
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			d[rel] = "link " + l
		case e.IsDir():
			d[rel] = fmt.Sprintf("dir %v", info.Mode().Perm())
		default:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			d[rel] = fmt.Sprintf("file %v %s", info.Mode().Perm(), hex.EncodeToString(h.Sum(nil)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// diffDigests reports every key whose value differs between want and got (up
// to ten): tree digests, database fingerprints.
func diffDigests(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := 0
	for _, k := range keys {
		if want[k] != got[k] && n < 10 {
			t.Errorf("%s: %s: got %q, want %q", what, k, got[k], want[k])
			n++
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && n < 10 {
			t.Errorf("%s: unexpected %s", what, k)
			n++
		}
	}
}

// leftovers lists restore debris under root that is still there after up
// to a minute: a restore leaves its pre-restore copies to a cleanup workflow
// that finishes shortly after it.
func leftovers(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		found = nil
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".pre-restore-") || strings.HasPrefix(e.Name(), ".vulcan-restore-") {
				found = append(found, e.Name())
			}
		}
		if len(found) == 0 || time.Now().After(deadline) {
			return found
		}
	}
}
