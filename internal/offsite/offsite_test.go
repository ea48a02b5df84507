package offsite_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/offsite"
	"github.com/project-vulcan/vulcan-backup/internal/store"
	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

// world is one test's tree, backup directory, gateway, bucket and keys.
type world struct {
	t        *testing.T
	root     string
	dir      store.Dir
	s3       *testutil.S3
	bucket   *offsite.Bucket
	identity *age.X25519Identity
	cache    string
	prev     *manifest.Manifest
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldWith(t, false)
}

// newWorldWith is newWorld with a bucket created with Object Lock when lock
// is set.
func newWorldWith(t *testing.T, lock bool) *world {
	t.Helper()
	w := &world{t: t, root: t.TempDir(), s3: testutil.StartS3(t)}
	w.dir = store.Dir{Path: filepath.Join(w.root, "backups")}
	w.cache = filepath.Join(w.root, ".vulcan", "offsite-name-key.json")
	loc, err := offsite.ParseURL(w.s3.URL(w.s3.Bucket(t, lock), "vulcan"))
	if err != nil {
		t.Fatal(err)
	}
	if w.bucket, err = offsite.Open(context.Background(), loc, offsite.Credentials{AccessKey: w.s3.Access, SecretKey: w.s3.Secret}); err != nil {
		t.Fatal(err)
	}
	if w.identity, err = age.GenerateX25519Identity(); err != nil {
		t.Fatal(err)
	}
	return w
}

// tree writes files files of the storage tree: small logs and larger
// random "recordings", reproducible from seed.
func (w *world) tree(files int, seed uint64) {
	w.t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range files {
		var data []byte
		name := filepath.Join(w.root, "storage", "logs", fmt.Sprintf("app-%03d.log", i))
		if i%10 == 0 {
			name = filepath.Join(w.root, "storage", "recordings", fmt.Sprintf("rec-%03d.webm", i))
			data = make([]byte, 1<<20+rng.IntN(1<<20))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
		} else {
			data = []byte(strings.Repeat(fmt.Sprintf("line %d of file %d: order filled\n", rng.IntN(1000), i), 200+rng.IntN(2000)))
		}
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
}

// backup makes a committed, verified local backup of the tree, reusing the
// previous one's members as the nightly backup does.
func (w *world) backup(id string) *manifest.Manifest {
	w.t.Helper()
	ctx := context.Background()
	if err := w.dir.Ensure(); err != nil {
		w.t.Fatal(err)
	}
	opts := archive.CreateOptions{Root: w.root, Paths: []string{"storage"}}
	if w.prev != nil {
		f, err := os.Open(w.dir.ArchivePath(w.prev.ID))
		if err != nil {
			w.t.Fatal(err)
		}
		defer f.Close()
		opts.Previous = &archive.Previous{Manifest: w.prev, Archive: f}
	}
	res, err := archive.CreateFile(ctx, w.dir.ArchivePath(id), opts)
	if err != nil {
		w.t.Fatal(err)
	}
	created, _ := manifest.ParseID(id)
	m := &manifest.Manifest{
		FormatVersion: manifest.FormatVersion, ID: id, Kind: manifest.KindScheduled, CreatedAt: created,
		Paths: []string{"storage"}, Archive: manifest.FileRef{File: manifest.ArchiveName(id), SHA256: res.SHA256, Size: res.Size},
		Files: res.Entries, TotalBytes: res.TotalBytes, ToolVersion: "test", Members: res.Members,
		DatabaseNote: "files only", VerifiedAt: created.Add(time.Minute),
	}
	if err := manifest.Write(w.dir.ManifestPath(id), m); err != nil {
		w.t.Fatal(err)
	}
	w.prev = m
	return m
}

func (w *world) copier() *offsite.Copier {
	w.t.Helper()
	n, err := offsite.LoadNamer(context.Background(), w.bucket, []age.Recipient{w.identity.Recipient()}, nil, w.cache)
	if err != nil {
		w.t.Fatal(err)
	}
	return &offsite.Copier{Bucket: w.bucket, Recipients: []age.Recipient{w.identity.Recipient()}, Names: n, Parallel: 4}
}

func (w *world) reader() *offsite.Reader {
	return &offsite.Reader{Bucket: w.bucket, Identities: []age.Identity{w.identity}, Parallel: 4}
}

func (w *world) copy(id string) offsite.CopyProgress {
	w.t.Helper()
	p, err := w.copier().Copy(context.Background(), w.dir, id)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// bucketFiles maps every file under the gateway's directory to its bytes.
func (w *world) bucketFiles() map[string][]byte {
	w.t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(w.s3.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = b
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

func TestCopyAndFetchGiveTheArchiveBackByteForByte(t *testing.T) {
	w := newWorld(t)
	w.tree(60, 1)
	m := w.backup("20261201_020000")
	p := w.copy(m.ID)
	if p.Uploaded == 0 || p.Done != p.Objects || p.SentBytes != m.Archive.Size {
		t.Fatalf("first copy: %+v, archive %d bytes", p, m.Archive.Size)
	}
	want, err := os.ReadFile(w.dir.ArchivePath(m.ID))
	if err != nil {
		t.Fatal(err)
	}

	lost := store.Dir{Path: filepath.Join(t.TempDir(), "backups")}
	got, err := w.reader().Fetch(context.Background(), lost, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Archive.SHA256 != m.Archive.SHA256 {
		t.Fatalf("fetched manifest names archive %s, want %s", got.Archive.SHA256, m.Archive.SHA256)
	}
	fetched, err := os.ReadFile(lost.ArchivePath(m.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fetched, want) {
		t.Fatalf("fetched archive differs from the local one (%d bytes against %d)", len(fetched), len(want))
	}
	if _, err := manifest.ReadBackup(lost.ManifestPath(m.ID)); err != nil {
		t.Fatalf("fetched manifest: %v", err)
	}
	ids, err := offsite.List(context.Background(), w.bucket)
	if err != nil || len(ids) != 1 || ids[0].ID != m.ID {
		t.Fatalf("List = %v, %v; want [%s]", ids, err, m.ID)
	}
	if _, err := w.reader().Fetch(context.Background(), lost, m.ID); err == nil {
		t.Fatal("a second fetch over the fetched backup succeeded")
	}
}

func TestTheBucketHoldsNoPlaintext(t *testing.T) {
	w := newWorld(t)
	w.tree(40, 2)
	m := w.backup("20261201_020000")
	w.copy(m.ID)
	// Known content: every file's first 32 bytes, and its name.
	var needles [][]byte
	for _, e := range m.Files {
		needles = append(needles, []byte(filepath.Base(e.Path)))
		if e.Type == manifest.TypeFile && e.Size >= 32 {
			b, err := os.ReadFile(filepath.Join(w.root, e.Path))
			if err != nil {
				t.Fatal(err)
			}
			needles = append(needles, b[:32])
		}
	}
	needles = append(needles, []byte(m.Archive.SHA256), []byte(m.ID))
	files := w.bucketFiles()
	if len(files) < 3 {
		t.Fatalf("the bucket holds %d files", len(files))
	}
	for p, b := range files {
		rel := strings.TrimPrefix(p, w.s3.Dir)
		for _, n := range needles {
			if bytes.Contains(b, n) || (string(n) != m.ID && strings.Contains(rel, string(n))) {
				t.Errorf("%s holds %q", rel, n)
			}
		}
		// The gateway's own lock files (.vgwlocks) are empty; the refs are
		// sealed with the name key; every other object is an age file.
		switch {
		case strings.HasPrefix(rel, "/.vgwlocks/"):
		case strings.HasSuffix(rel, "/refs.bin"):
			var env struct {
				NameKey string `json:"name_key"`
				Sealed  []byte `json:"sealed"`
			}
			if err := json.Unmarshal(b, &env); err != nil || len(env.Sealed) < 64 || bytes.Contains(env.Sealed, []byte("data/")) {
				t.Errorf("%s is not sealed refs: %v", rel, err)
			}
		case !bytes.HasPrefix(b, []byte("age-encryption.org/v1\n")):
			t.Errorf("%s is not an age file", rel)
		}
	}
}

func TestSecondCopyOfAnUnchangedTreeUploadsNothingNew(t *testing.T) {
	w := newWorld(t)
	w.tree(80, 3)
	first := w.copy(w.backup("20261201_020000").ID)
	second := w.copy(w.backup("20261202_020000").ID)
	if second.SentBytes*100 >= first.SentBytes {
		t.Fatalf("second copy sent %d bytes, the first %d: want under 1 %%", second.SentBytes, first.SentBytes)
	}
	// Change 5 % of the files.
	for i := 0; i < 80; i += 20 {
		name := filepath.Join(w.root, "storage", "logs", fmt.Sprintf("app-%03d.log", i+1))
		if err := os.WriteFile(name, []byte(strings.Repeat("changed\n", 5000+i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	third := w.copy(w.backup("20261203_020000").ID)
	if third.Uploaded == 0 || third.SentBytes*5 > first.SentBytes {
		t.Fatalf("after changing 5 %% of the files the copy sent %d bytes (%d objects), the first %d", third.SentBytes, third.Uploaded, first.SentBytes)
	}
	t.Logf("first %d bytes, unchanged %d, 5 %% changed %d (%.1f %%)", first.SentBytes, second.SentBytes, third.SentBytes, 100*float64(third.SentBytes)/float64(first.SentBytes))
	for _, id := range []string{"20261201_020000", "20261202_020000", "20261203_020000"} {
		if _, err := w.reader().Verify(context.Background(), id, 0); err != nil {
			t.Fatalf("verify %s: %v", id, err)
		}
	}
	if again := w.copy("20261203_020000"); again.Uploaded != 0 {
		t.Fatalf("copying a copied backup again uploaded %d objects", again.Uploaded)
	}
}

// objectFiles are the gateway's files of data objects.
func (w *world) objectFiles() []string {
	var out []string
	for p := range w.bucketFiles() {
		if strings.Contains(p, "/data/") {
			out = append(out, p)
		}
	}
	return out
}

func TestDamagedAndMissingObjectsAreFoundAndRefused(t *testing.T) {
	w := newWorld(t)
	w.tree(40, 4)
	m := w.backup("20261201_020000")
	w.copy(m.ID)
	objs := w.objectFiles()
	if len(objs) < 2 {
		t.Fatalf("%d objects", len(objs))
	}
	damaged, missing := objs[0], objs[1]
	b, err := os.ReadFile(damaged)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(damaged, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}
	_, err = w.reader().Verify(context.Background(), m.ID, 0)
	if !errors.Is(err, offsite.ErrDamaged) {
		t.Fatalf("verify: %v, want damage", err)
	}
	for _, p := range []string{damaged, missing} {
		if !strings.Contains(err.Error(), filepath.Base(p)) {
			t.Errorf("verify's error does not name object %s: %v", filepath.Base(p), err)
		}
	}
	if !strings.Contains(err.Error(), m.ID) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("verify's error does not name the backup and the missing object: %v", err)
	}
	lost := store.Dir{Path: filepath.Join(t.TempDir(), "backups")}
	if _, err := w.reader().Fetch(context.Background(), lost, m.ID); !errors.Is(err, offsite.ErrDamaged) {
		t.Fatalf("fetch of a damaged copy: %v", err)
	}
	entries, _ := os.ReadDir(lost.Path)
	for _, e := range entries {
		if !e.IsDir() {
			t.Errorf("a refused fetch left %s behind", e.Name())
		}
	}
}

func TestAnotherIdentityCannotRead(t *testing.T) {
	w := newWorld(t)
	w.tree(10, 5)
	m := w.backup("20261201_020000")
	w.copy(m.ID)
	other, _ := age.GenerateX25519Identity()
	r := &offsite.Reader{Bucket: w.bucket, Identities: []age.Identity{other}}
	if _, err := r.Verify(context.Background(), m.ID, 0); !errors.Is(err, offsite.ErrDamaged) || !strings.Contains(err.Error(), "index") {
		t.Fatalf("verify with a foreign identity: %v", err)
	}
}

func TestALocallyDamagedArchiveIsNotCopied(t *testing.T) {
	w := newWorld(t)
	w.tree(20, 6)
	m := w.backup("20261201_020000")
	f, err := os.OpenFile(w.dir.ArchivePath(m.ID), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	x := m.Members.List[len(m.Members.List)/2]
	one := []byte{0}
	if _, err := f.ReadAt(one, x.Offset+x.Length/2); err != nil {
		t.Fatal(err)
	}
	one[0] ^= 1
	if _, err := f.WriteAt(one, x.Offset+x.Length/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = w.copier().Copy(context.Background(), w.dir, m.ID)
	if err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("copy of a damaged archive: %v", err)
	}
	if ids, _ := offsite.List(context.Background(), w.bucket); len(ids) != 0 {
		t.Fatalf("the damaged backup is listed remotely: %v", ids)
	}
}

func TestNameKeyIsKeptAndRecovered(t *testing.T) {
	w := newWorld(t)
	recs := []age.Recipient{w.identity.Recipient()}
	a, err := offsite.LoadNamer(context.Background(), w.bucket, recs, nil, w.cache)
	if err != nil {
		t.Fatal(err)
	}
	b, err := offsite.LoadNamer(context.Background(), w.bucket, recs, nil, w.cache)
	if err != nil || b.ID != a.ID {
		t.Fatalf("the cached key was not reused: %v, %v", b, err)
	}
	sum := fmt.Sprintf("%x", sha256.Sum256([]byte("x")))
	// A new worker with the identity recovers the key from the bucket.
	c, err := offsite.LoadNamer(context.Background(), w.bucket, recs, []age.Identity{w.identity}, filepath.Join(t.TempDir(), "k.json"))
	if err != nil || c.ID != a.ID || c.ObjectKey(sum) != a.ObjectKey(sum) {
		t.Fatalf("key from the bucket: %v, %v", c, err)
	}
	if strings.Contains(a.ObjectKey(sum), sum) {
		t.Fatalf("object key %s shows the member's hash", a.ObjectKey(sum))
	}
	st, err := os.Stat(w.cache)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v, %v", st, err)
	}
}

// The manual path: curl as the S3 client, the real age CLI, jq and tar, no
// code of ours (scripts/offsite-recover.sh, documented in README).
func TestManualRecoveryWithAgeAndCurl(t *testing.T) {
	for _, tool := range []string{"age", "curl", "jq", "tar", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Need(t, tool+" is not installed (make test installs age from Debian's packages)")
		}
	}
	w := newWorld(t)
	w.tree(30, 7)
	m := w.backup("20261201_020000")
	w.copy(m.ID)
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(keyFile, []byte(w.identity.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	loc := w.bucket.Location()
	cmd := exec.Command(filepath.Join(testutil.RepoRoot(t), "scripts", "offsite-recover.sh"), w.s3.Endpoint, loc.Bucket, loc.Prefix, m.ID, keyFile, out) // #nosec G204 -- the repository's own script
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+w.s3.Access, "AWS_SECRET_ACCESS_KEY="+w.s3.Secret, "EXTRACT=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("offsite-recover.sh: %v\n%s", err, b)
	}
	want, _ := os.ReadFile(w.dir.ArchivePath(m.ID))
	got, err := os.ReadFile(filepath.Join(out, manifest.ArchiveName(m.ID)))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the hand-recovered archive differs from the local one (%d bytes against %d): %v", len(got), len(want), err)
	}
	for _, e := range m.Files {
		if e.Type != manifest.TypeFile {
			continue
		}
		b, err := os.ReadFile(filepath.Join(out, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%x", sha256.Sum256(b)) != e.SHA256 {
			t.Fatalf("%s: extracted by hand, its sha256 is not the manifest's", e.Path)
		}
	}
}
