package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/proto"

	"github.com/project-vulcan/vulcan-backup/internal/faultpoint"
	"github.com/project-vulcan/vulcan-backup/internal/testutil"
	wf "github.com/project-vulcan/vulcan-backup/workflows"
)

// remoteStore is a versitygw bucket and the age keys of one test.
type remoteStore struct {
	s3         *testutil.S3
	bucket     string
	recipients string // file of the public key
	identity   string // file of the private key
}

func newRemoteStore(t *testing.T) *remoteStore {
	t.Helper()
	s3 := testutil.StartS3(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir() // outside the root: not part of what is backed up
	r := &remoteStore{s3: s3, bucket: s3.Bucket(t, false),
		recipients: filepath.Join(keys, "recipients.txt"), identity: filepath.Join(keys, "identity.txt")}
	if err := os.WriteFile(r.recipients, []byte("# the operator's key\n"+id.Recipient().String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.identity, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// env is what a worker and the starter need to reach the store.
func (r *remoteStore) env() []string {
	return []string{
		"VULCAN_OFFSITE_URL=" + r.s3.URL(r.bucket, "vulcan"),
		"AWS_ACCESS_KEY_ID=" + r.s3.Access, "AWS_SECRET_ACCESS_KEY=" + r.s3.Secret,
		"VULCAN_OFFSITE_RECIPIENTS_FILE=" + r.recipients, "VULCAN_OFFSITE_IDENTITY_FILE=" + r.identity,
	}
}

// objectFiles are the files behind the bucket's data objects.
func (r *remoteStore) objectFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(r.s3.Dir, r.bucket, "vulcan", "data", "*", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no objects in the bucket (%v)", err)
	}
	return files
}

// offsiteStatus is the off-site part of `starter status --json`.
type offsiteStatus struct {
	Offsite     string `json:"offsite"`
	LastOffsite *struct {
		ID       string `json:"id"`
		Objects  int    `json:"objects"`
		Uploaded int    `json:"uploaded"`
	} `json:"last_offsite"`
	OffsitePending []string `json:"offsite_pending"`
}

func (s *system) offsiteStatus() offsiteStatus {
	s.t.Helper()
	out, _, _ := s.starter("status", "--json")
	var st offsiteStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		s.t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// waitForOffsite waits until backup id's copy has completed.
func (s *system) waitForOffsite(id string) offsiteStatus {
	s.t.Helper()
	var st offsiteStatus
	waitFor(s.t, 3*time.Minute, "the off-site copy of "+id, func() bool {
		st = s.offsiteStatus()
		return st.LastOffsite != nil && st.LastOffsite.ID == id && len(st.OffsitePending) == 0
	})
	return st
}

// recreateDatabase drops the database of dbURL and creates it empty, as a
// new host's PostgreSQL would have it.
func recreateDatabase(t *testing.T, dbURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testutil.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := pgx.Identifier{strings.TrimPrefix(mustURLPath(t, dbURL), "/")}.Sanitize()
	for _, q := range []string{"DROP DATABASE " + name + " WITH (FORCE)", "CREATE DATABASE " + name} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// Total loss: the storage tree, the whole backup directory, the worker's
// state and the database are gone; the backup comes back from the bucket
// alone, every byte and row. Before that, a damaged object is found by
// verify --remote and refused by the remote restore, which changes nothing.
func TestTotalLossRestoreFromTheBucket(t *testing.T) {
	r := newRemoteStore(t)
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 500)
	s := newSystem(t, append(r.env(), "DATABASE_URL="+dbURL)...)
	makeStorage(t, s.root, 4)
	wantTree := treeDigest(t, filepath.Join(s.root, "storage"))
	wantDB := testutil.Fingerprint(t, dbURL)
	s.start()
	b := s.backup()
	st := s.waitForOffsite(b.Result.ID)
	if st.LastOffsite.Objects < 2 || st.LastOffsite.Uploaded != st.LastOffsite.Objects {
		t.Fatalf("first copy: %+v", st.LastOffsite)
	}
	out := s.mustStarter("list", "--remote")
	if !strings.Contains(out, b.Result.ID) {
		t.Fatalf("list --remote does not show %s:\n%s", b.Result.ID, out)
	}
	if out := s.mustStarter("verify", "--remote", b.Result.ID); !strings.Contains(out, "OK") {
		t.Fatalf("verify --remote: %s", out)
	}

	assertOffsiteSecretsNowhere(t, s, r)

	// Nothing in the bucket is readable: no file name of the tree, no text
	// of the dump (its DDL and a comment), no checksum of the manifest.
	digest := strings.Fields(wantTree["logs/app-000.log"])
	if len(digest) != 3 {
		t.Fatalf("no digest of logs/app-000.log: %q", wantTree["logs/app-000.log"])
	}
	needles := []string{"validation_attachments", "Trading journal", "CREATE TABLE", "app-000.log", "ünïcødé", digest[2]}
	filepath.Walk(filepath.Join(r.s3.Dir, r.bucket), func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		data, _ := os.ReadFile(p)
		for _, n := range needles {
			if n != "" && (strings.Contains(string(data), n) || strings.Contains(p, n)) {
				t.Errorf("the bucket's %s holds %q", p, n)
			}
		}
		return nil
	})

	// The host's disk is lost.
	s.stop()
	for _, p := range []string{"storage", "backups", ".vulcan"} {
		if err := os.RemoveAll(filepath.Join(s.root, p)); err != nil {
			t.Fatal(err)
		}
	}
	recreateDatabase(t, dbURL)
	s.start()
	if out := s.mustStarter("list", "--remote", "--json"); !strings.Contains(out, `"local": false`) {
		t.Fatalf("list --remote after the loss: %s", out)
	}

	// A flipped byte in one object: found, named, refused.
	objs := r.objectFiles(t)
	victim := objs[len(objs)/2]
	good, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0x40
	if err := os.WriteFile(victim, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	key := "data/" + filepath.Base(filepath.Dir(victim)) + "/" + filepath.Base(victim)
	_, errOut, code := s.starter("verify", "--remote", b.Result.ID)
	if code != 3 || !strings.Contains(errOut, key) || !strings.Contains(errOut, b.Result.ID) {
		t.Fatalf("verify --remote of a damaged copy: exit %d, want 3 naming %s and the backup:\n%s", code, key, errOut)
	}
	_, errOut, code = s.starter("restore", b.Result.ID, "--yes")
	if code != 3 || !strings.Contains(errOut, key) {
		t.Fatalf("remote restore of a damaged copy: exit %d, want 3 naming %s:\n%s", code, key, errOut)
	}
	for _, p := range []string{"storage", filepath.Join("backups", "vulcan_backup_"+b.Result.ID+".tar.gz"), filepath.Join("backups", "vulcan_backup_"+b.Result.ID+".json")} {
		if _, err := os.Stat(filepath.Join(s.root, p)); !os.IsNotExist(err) {
			t.Errorf("the refused restore left %s (%v)", p, err)
		}
	}
	if got := testutil.Fingerprint(t, dbURL); len(got) > 0 && got["r:trades"] != "" {
		t.Errorf("the refused restore changed the database")
	}

	// Put the byte back: the restore from the bucket brings everything back.
	if err := os.WriteFile(victim, good, 0o644); err != nil {
		t.Fatal(err)
	}
	out = s.mustStarter("restore", b.Result.ID, "--yes")
	if !strings.Contains(out, "restored backup "+b.Result.ID) {
		t.Fatalf("remote restore: %s", out)
	}
	diffDigests(t, "storage from the bucket", wantTree, treeDigest(t, filepath.Join(s.root, "storage")))
	diffDigests(t, "database from the bucket", wantDB, testutil.Fingerprint(t, dbURL))
	if out := s.mustStarter("verify", b.Result.ID); !strings.Contains(out, "OK") {
		t.Fatalf("the fetched backup does not verify: %s", out)
	}
	if l := leftovers(t, s.root); len(l) > 0 {
		t.Errorf("leftovers: %v", l)
	}

	assertOffsiteSecretsNowhere(t, s, r)
}

// A worker killed in the middle of an upload: its replacement uploads only
// what the bucket lacks, the copy completes and verifies.
func TestWorkerKilledMidUpload(t *testing.T) {
	r := newRemoteStore(t)
	s := newSystem(t, append(r.env(), "VULCAN_OFFSITE_PARALLEL=1")...)
	s.bin = faultWorkerBin
	makeStorage(t, s.root, 6)
	s.setEnv(faultpoint.Env, faultpoint.OffsiteUploading)
	s.start()
	b := s.backup()
	killAtAndRestart(t, s, faultpoint.OffsiteUploading)
	st := s.waitForOffsite(b.Result.ID)
	c := st.LastOffsite
	if c.Uploaded == 0 || c.Uploaded > c.Objects-(c.Objects+1)/2 {
		t.Fatalf("the replacement uploaded %d of %d objects; want only the half the killed worker had not", c.Uploaded, c.Objects)
	}
	if n := len(r.objectFiles(t)); n > c.Objects {
		t.Fatalf("%d objects in the bucket for a backup of %d", n, c.Objects)
	}
	if out := s.mustStarter("verify", "--remote", b.Result.ID); !strings.Contains(out, "every object") {
		t.Fatalf("verify --remote: %s", out)
	}
}

// Off-site settings that cannot work stop the worker with the reason; a
// store that does not answer leaves the backup valid and its copy pending,
// said by status, never a silent local-only backup.
func TestOffsiteMisconfigurationIsClear(t *testing.T) {
	r := newRemoteStore(t)
	garbage := filepath.Join(t.TempDir(), "recipients.txt")
	os.WriteFile(garbage, []byte("not a key\n"), 0o600)
	for name, c := range map[string]struct {
		env  []string
		want string
	}{
		"wrong credentials": {[]string{"AWS_SECRET_ACCESS_KEY=wrong"}, "AWS_SECRET_ACCESS_KEY"},
		"missing bucket":    {[]string{"VULCAN_OFFSITE_URL=" + r.s3.URL("no-such-bucket", "vulcan")}, "no-such-bucket"},
		"bad recipients":    {[]string{"VULCAN_OFFSITE_RECIPIENTS_FILE=" + garbage}, "line 1"},
		"no recipients":     {[]string{"VULCAN_OFFSITE_RECIPIENTS_FILE="}, "VULCAN_OFFSITE_RECIPIENTS_FILE"},
	} {
		t.Run(name, func(t *testing.T) {
			s := newSystem(t, append(r.env(), c.env...)...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, s.bin, "--dev")
			cmd.Dir, cmd.Env = s.root, s.environ()
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), c.want) || strings.Contains(string(out), "worker running") {
				t.Fatalf("worker with %s: %v, want it to stop saying %q:\n%s", name, err, c.want, out)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		s := newSystem(t, r.env()...)
		makeStorage(t, s.root, 1)
		r.s3.Stop()
		s.start()
		if !strings.Contains(s.logs.String(), "off-site store does not answer") {
			t.Fatalf("no warning at start:\n%s", s.logs.String())
		}
		b := s.backup()
		if _, err := os.Stat(filepath.Join(s.root, b.Result.Manifest)); err != nil {
			t.Fatalf("the backup is not valid without its copy: %v", err)
		}
		out := s.mustStarter("status")
		if !strings.Contains(out, "still to copy: "+b.Result.ID) {
			t.Fatalf("status does not say the copy is pending:\n%s", out)
		}
	})
}

func mustURLPath(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Path
}

// A drill of the off-site copy downloads it for the drill, times the
// download, and leaves neither the download nor the scratch copies; a
// backup that is only in the store drills from there without being asked.
func TestDrillFromTheBucket(t *testing.T) {
	r := newRemoteStore(t)
	dbURL := testutil.NewDatabase(t)
	testutil.LoadVulcanDB(t, dbURL, 200)
	s := newSystem(t, append(r.env(), "DATABASE_URL="+dbURL)...)
	makeStorage(t, s.root, 2)
	s.start()
	b := s.backup()
	s.waitForOffsite(b.Result.ID)
	wantTree := treeDigest(t, filepath.Join(s.root, "storage"))

	drill := func(args ...string) wf.DrillReport {
		t.Helper()
		out := s.mustStarter(append([]string{"drill", "--json"}, args...)...)
		var res struct {
			Result wf.DrillReport `json:"result"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("drill --json: %v\n%s", err, out)
		}
		return res.Result
	}
	rep := drill("--from-remote")
	if !rep.Passed || rep.Source != wf.SourceRemote || rep.BackupID != b.Result.ID || !rep.Loaded || rep.Phases["download"] <= 0 {
		t.Fatalf("drill from the bucket: %+v", rep)
	}
	if left, _ := filepath.Glob(filepath.Join(s.root, "backups", "offsite", "drill-*")); len(left) > 0 {
		t.Fatalf("the drill left its download: %v", left)
	}
	if l := leftovers(t, s.root); len(l) > 0 {
		t.Fatalf("leftovers: %v", l)
	}
	diffDigests(t, "live storage after the drill", wantTree, treeDigest(t, filepath.Join(s.root, "storage")))

	// The local copy is gone: the id drills from the bucket by itself.
	for _, p := range []string{b.Result.Archive, b.Result.Manifest} {
		os.Remove(filepath.Join(s.root, p))
	}
	if rep := drill(b.Result.ID); !rep.Passed || rep.Source != wf.SourceRemote {
		t.Fatalf("drill of a backup only in the bucket: %+v", rep)
	}
}

// assertOffsiteSecretsNowhere checks that the store's secret key and the age
// private key are nowhere: not in the worker's log, the backup directory,
// the bucket or any workflow history.
func assertOffsiteSecretsNowhere(t *testing.T, s *system, r *remoteStore) {
	t.Helper()
	identity, _ := os.ReadFile(r.identity)
	secrets := map[string]string{"the S3 secret key": r.s3.Secret, "the age private key": strings.TrimSpace(string(identity))}
	for what, secret := range secrets {
		if strings.Contains(s.logs.String(), secret) {
			t.Errorf("%s appears in the worker log", what)
		}
		for _, dir := range []string{filepath.Join(s.root, "backups"), filepath.Join(r.s3.Dir, r.bucket)} {
			filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
				if err == nil && info.Mode().IsRegular() {
					if data, _ := os.ReadFile(p); strings.Contains(string(data), secret) {
						t.Errorf("%s appears in %s", what, p)
					}
				}
				return nil
			})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.temporalClient(t)
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{})
	if err != nil || len(resp.Executions) < 2 {
		t.Fatalf("workflows: %v (%d)", err, len(resp.GetExecutions()))
	}
	for _, e := range resp.Executions {
		for _, ev := range history(ctx, t, c, e.Execution.WorkflowId, e.Execution.RunId).Events {
			data, _ := proto.Marshal(ev)
			for what, secret := range secrets {
				if strings.Contains(string(data), secret) {
					t.Errorf("%s appears in the history of %s", what, e.Execution.WorkflowId)
				}
			}
		}
	}
}
