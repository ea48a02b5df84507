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
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

var workerBin, starterBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vulcan-e2e-bin")
	if err != nil {
		panic(err)
	}
	workerBin, starterBin = filepath.Join(dir, "worker"), filepath.Join(dir, "starter")
	for bin, pkg := range map[string]string{workerBin: "../worker", starterBin: "../starter"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// system is one project root with its own worker and embedded server.
type system struct {
	t      *testing.T
	root   string
	addr   string
	uiPort int
	env    []string
	cmd    *exec.Cmd
	logs   *syncBuffer
	done   chan struct{}
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
	s := &system{t: t, root: t.TempDir(), addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), uiPort: 0}
	s.env = append([]string{
		"TEMPORAL_ADDRESS=" + s.addr, "VULCAN_ROOT=" + s.root, "VULCAN_UI_PORT=0", "VULCAN_TASK_QUEUE=vulcan-e2e",
		"DATABASE_URL=", "VULCAN_SERVICES=none", "VULCAN_API_ADDR=", "VULCAN_NOTIFY_URL=",
	}, env...)
	return s
}

func (s *system) environ() []string {
	return append(os.Environ(), s.env...)
}

// start runs `worker --dev` in the root and waits until it serves.
func (s *system) start() {
	s.t.Helper()
	s.logs = &syncBuffer{}
	s.cmd = exec.Command(workerBin, "--dev")
	s.cmd.Dir = s.root
	s.cmd.Env = s.environ()
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()
	s.t.Cleanup(s.stop)
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(s.logs.String(), "nightly schedule") {
		select {
		case <-s.done:
			s.t.Fatalf("worker exited:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("worker not ready:\n%s", s.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the worker with SIGTERM (SIGKILL after 20 s).
func (s *system) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	if s.t.Failed() {
		s.t.Logf("worker log:\n%s", s.logs.String())
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

// leftovers lists restore debris under root.
func leftovers(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".pre-restore-") || strings.HasPrefix(e.Name(), ".vulcan-restore-") {
			found = append(found, e.Name())
		}
	}
	return found
}
