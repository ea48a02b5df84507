package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/project-vulcan/vulcan-backup/internal/services"
	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

// dockerApp is a stand-in application of three containers in one compose
// project: two labelled for restores (one of them stopped beforehand) and
// one unlabelled.
type dockerApp struct {
	c                         *client.Client
	project                   string
	web, parked, untouched    string
	webDir, parkedDir, untDir string
}

func newDockerApp(t *testing.T) *dockerApp {
	t.Helper()
	c := testutil.Docker(t)
	a := &dockerApp{c: c, project: testutil.RandomName("vulcane2e")}
	dir := func() string {
		d := t.TempDir()
		os.Chmod(d, 0o777)
		return d
	}
	a.webDir, a.parkedDir, a.untDir = dir(), dir(), dir()
	restore := map[string]string{services.LabelStopDuringRestore: "true", services.LabelComposeProject: a.project}
	a.web = testutil.Standin(t, c, "web", a.webDir, restore, true)
	a.parked = testutil.Standin(t, c, "parked", a.parkedDir, restore, false)
	a.untouched = testutil.Standin(t, c, "untouched", a.untDir, map[string]string{services.LabelComposeProject: a.project}, true)
	waitFor(t, 20*time.Second, "containers to start", func() bool {
		return testutil.Starts(t, a.webDir) == 1 && testutil.Starts(t, a.untDir) == 1
	})
	return a
}

func (a *dockerApp) env() []string {
	return []string{"VULCAN_SERVICES=docker", "VULCAN_COMPOSE_PROJECT=" + a.project, "VULCAN_DOCKER_STOP_TIMEOUT=5s", "VULCAN_HEALTH_TIMEOUT=30s"}
}

// check asserts the state after a restore (or its rollback): the labelled
// running container was stopped once and started again, the others were not
// touched.
func (a *dockerApp) check(t *testing.T, webStarts int) {
	t.Helper()
	if !testutil.Running(t, a.c, a.web) || testutil.Starts(t, a.webDir) != webStarts {
		t.Errorf("web: running %v, starts %d (want running, %d)", testutil.Running(t, a.c, a.web), testutil.Starts(t, a.webDir), webStarts)
	}
	if testutil.Running(t, a.c, a.parked) || testutil.Starts(t, a.parkedDir) != 0 {
		t.Error("the container stopped before the restore was started")
	}
	if !testutil.Running(t, a.c, a.untouched) || testutil.Starts(t, a.untDir) != 1 {
		t.Error("the unlabelled container was stopped or restarted")
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDockerRestoreStopsAndStartsLabelledContainers(t *testing.T) {
	app := newDockerApp(t)
	s := newSystem(t, app.env()...)
	makeStorage(t, s.root, 1)
	s.start()
	b := s.backup()
	os.RemoveAll(filepath.Join(s.root, "storage/logs"))
	out := s.mustStarter("restore", b.Result.Archive, "--yes")
	if !strings.Contains(out, "stopped and started "+app.web) {
		t.Errorf("restore output does not name the container: %s", out)
	}
	app.check(t, 2)
	if _, err := os.Stat(filepath.Join(s.root, "storage/logs")); err != nil {
		t.Fatal("storage not restored")
	}
}

// A restore that fails at the database step still ends with the containers
// running (compensation). The database here is one the role may not rename,
// so the restore is in place, and a view created after the backup makes the
// dump's DROP TABLE fail.
func TestDockerRestoreFailingAtDatabaseRestartsContainers(t *testing.T) {
	app := newDockerApp(t)
	dbURL := testutil.NewNoCreateDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 200)
	s := newSystem(t, append(app.env(), "DATABASE_URL="+dbURL)...)
	makeStorage(t, s.root, 1)
	s.start()
	b := s.backup()
	testutil.Psql(t, dbURL, "-c", "CREATE VIEW added_later AS SELECT count(*) FROM trades")
	wantDB := testutil.Fingerprint(t, dbURL)
	wantTree := treeDigest(t, filepath.Join(s.root, "storage"))

	_, errOut, code := s.starter("restore", b.Result.Archive, "--yes")
	if code != 1 || !strings.Contains(errOut, "step 5 (restore database)") || !strings.Contains(errOut, "rolled back") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	app.check(t, 2)
	diffDigests(t, "storage after rollback", wantTree, treeDigest(t, filepath.Join(s.root, "storage")))
	diffDigests(t, "database after rollback", wantDB, testutil.Fingerprint(t, dbURL))
}

// The worker is killed between stopping the containers and starting them;
// the restarted worker finishes the restore and starts them.
func TestDockerWorkerKilledBetweenStopAndStart(t *testing.T) {
	app := newDockerApp(t)
	s := newSystem(t, app.env()...)
	makeStorage(t, s.root, 1)
	s.start()
	b := s.backup()
	s.mustStarter("restore", b.Result.Archive, "--yes", "--detach")
	waitFor(t, 60*time.Second, "the restore to stop the container", func() bool { return !testutil.Running(t, app.c, app.web) })
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	time.Sleep(500 * time.Millisecond)
	if testutil.Running(t, app.c, app.web) {
		t.Fatal("container running again before the worker came back")
	}
	s.start()
	// The interrupted activity is retried after its heartbeat timeout.
	waitFor(t, 3*time.Minute, "the restarted worker to start the container", func() bool {
		return testutil.Running(t, app.c, app.web) && testutil.Starts(t, app.webDir) == 2
	})
	waitFor(t, time.Minute, "the restore to finish", func() bool {
		_, err := os.Stat(filepath.Join(s.root, "backups", ".vulcan.lock"))
		return os.IsNotExist(err)
	})
	app.check(t, 2)
	if l := leftovers(t, s.root); len(l) > 0 {
		t.Errorf("leftovers: %v", l)
	}
}

// A container labelled vulcan.stop-during-backup=true is stopped for the
// archive step and started again, also when the backup fails.
func TestDockerStopDuringBackup(t *testing.T) {
	c := testutil.Docker(t)
	project := testutil.RandomName("vulcane2e")
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	chroma := testutil.Standin(t, c, "chroma", dir, map[string]string{services.LabelStopDuringBackup: "true", services.LabelComposeProject: project}, true)
	waitFor(t, 20*time.Second, "chroma to start", func() bool { return testutil.Starts(t, dir) == 1 })
	s := newSystem(t, "VULCAN_SERVICES=docker", "VULCAN_COMPOSE_PROJECT="+project, "VULCAN_DOCKER_STOP_TIMEOUT=5s")
	makeStorage(t, s.root, 1)
	s.start()
	s.backup()
	if !testutil.Running(t, c, chroma) || testutil.Starts(t, dir) != 2 {
		t.Fatalf("after a backup: running %v, starts %d; want running, 2", testutil.Running(t, c, chroma), testutil.Starts(t, dir))
	}
	// A failing backup (a configured path is missing) still starts it again.
	s.stop()
	s.env = append(s.env, "VULCAN_PATHS=storage,missing")
	s.start()
	_, errOut, code := s.starter("backup")
	if code == 0 || !strings.Contains(errOut, "missing") {
		t.Fatalf("backup of a missing path: exit %d %q", code, errOut)
	}
	if !testutil.Running(t, c, chroma) || testutil.Starts(t, dir) != 3 {
		t.Fatalf("after a failed backup: running %v, starts %d; want running, 3", testutil.Running(t, c, chroma), testutil.Starts(t, dir))
	}
}
