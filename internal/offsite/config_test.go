package offsite

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Location
		err  string
	}{
		{in: "s3://b", want: Location{Bucket: "b", Secure: true}},
		{in: "s3://b/a/b/?region=eu-west-1", want: Location{Bucket: "b", Prefix: "a/b/", Secure: true, Region: "eu-west-1"}},
		{in: "s3://b/p?endpoint=http://127.0.0.1:7070&style=path", want: Location{Bucket: "b", Prefix: "p/", Endpoint: "127.0.0.1:7070", PathStyle: true}},
		{in: "s3://b?endpoint=https://s3.example.com&style=virtual&ca=/etc/ca.pem", want: Location{Bucket: "b", Endpoint: "s3.example.com", Secure: true, VirtualHost: true, CAFile: "/etc/ca.pem"}},
		{in: "https://b/p", err: "scheme"},
		{in: "s3:///p", err: "no bucket"},
		{in: "s3://k:s@b/p", err: "credentials"},
		{in: "s3://b/a/../c", err: ".."},
		{in: "s3://b?endpoint=ftp://h", err: "endpoint"},
		{in: "s3://b?style=dns", err: "style"},
		{in: "s3://b?secret=x", err: "unknown parameter"},
	} {
		got, err := ParseURL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseURL(%q) = %v, want an error with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestLoadRecipients(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ssh := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN op@host"
	recs, err := LoadRecipients(write("ok", "# operators\n\n"+id.Recipient().String()+"\n"+ssh+"\n"))
	if err != nil || len(recs) != 2 {
		t.Fatalf("LoadRecipients = %d recipients, %v", len(recs), err)
	}
	for name, c := range map[string]struct{ body, err string }{
		"empty":   {"# nothing\n", "no public key"},
		"garbage": {"hello\n", "line 1"},
		"private": {id.String() + "\n", "private key"},
		"badage":  {"age1notakey\n", "line 1"},
	} {
		_, err := LoadRecipients(write(name, c.body))
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", name, err, c.err)
		}
		if err != nil && strings.Contains(err.Error(), "AGE-SECRET-KEY") {
			t.Errorf("%s: the error shows the key: %v", name, err)
		}
	}
	if _, err := LoadRecipients(""); err == nil || !strings.Contains(err.Error(), "VULCAN_OFFSITE_RECIPIENTS_FILE") {
		t.Errorf("no file: %v", err)
	}
	if _, err := LoadRecipients(filepath.Join(dir, "absent")); err == nil {
		t.Error("a missing file loaded")
	}
	ids, err := LoadIdentities(write("id", "# key\n"+id.String()+"\n"))
	if err != nil || len(ids) != 1 {
		t.Fatalf("LoadIdentities = %v, %v", ids, err)
	}
}

func TestOpenSaysWhatIsWrongWithTheStore(t *testing.T) {
	s3 := testutil.StartS3(t)
	bucket := s3.Bucket(t, false)
	good := Credentials{AccessKey: s3.Access, SecretKey: s3.Secret}
	loc, err := ParseURL(s3.URL(bucket, "p"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := Open(ctx, loc, good); err != nil {
		t.Fatalf("good store: %v", err)
	}
	var cfg *ConfigError
	if _, err := Open(ctx, loc, Credentials{AccessKey: s3.Access, SecretKey: "wrong"}); !errors.As(err, &cfg) || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Errorf("wrong secret: %v", err)
	}
	if _, err := Open(ctx, loc, Credentials{AccessKey: "nobody", SecretKey: "x"}); !errors.As(err, &cfg) {
		t.Errorf("unknown key: %v", err)
	}
	missing := loc
	missing.Bucket = "no-such-bucket"
	if _, err := Open(ctx, missing, good); !errors.As(err, &cfg) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing bucket: %v", err)
	}
	caLoc := loc
	caLoc.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caLoc.CAFile, []byte("not a certificate"), 0o600) // #nosec G104 -- checked by the Open below
	if _, err := Open(ctx, caLoc, good); !errors.As(err, &cfg) || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA: %v", err)
	}
	s3.Stop()
	_, err = Open(ctx, loc, good)
	if err == nil || errors.As(err, &cfg) || !strings.Contains(err.Error(), loc.Endpoint) {
		t.Errorf("unreachable endpoint: %v (want a retryable error naming the endpoint)", err)
	}
}

// An HTTPS endpoint with a certificate from the operator's own CA: trusted
// with ca=, refused without it (not silently accepted).
func TestTLSWithACustomCA(t *testing.T) {
	s3, ca := testutil.StartS3TLS(t)
	bucket := s3.Bucket(t, false)
	good := Credentials{AccessKey: s3.Access, SecretKey: s3.Secret}
	ctx := context.Background()
	loc, err := ParseURL(s3.URL(bucket, "p") + "&ca=" + ca)
	if err != nil {
		t.Fatal(err)
	}
	if !loc.Secure || loc.CAFile != ca {
		t.Fatalf("parsed %+v", loc)
	}
	b, err := Open(ctx, loc, good)
	if err != nil {
		t.Fatalf("HTTPS store with its CA: %v", err)
	}
	if err := b.Put(ctx, "probe", []byte("x"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	loc.CAFile = ""
	if _, err := Open(ctx, loc, good); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("HTTPS store without its CA: %v, want a certificate error", err)
	}
}

// Virtual-host addressing (<bucket>.<endpoint host>) against a gateway that
// serves it, through a proxy standing in for DNS.
func TestVirtualHostAddressing(t *testing.T) {
	s3 := testutil.StartS3Virtual(t)
	bucket := s3.Bucket(t, false)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s3.Endpoint, "http://"))
	loc, err := ParseURL("s3://" + bucket + "/p?endpoint=http://" + testutil.VirtualDomain + ":" + port + "&style=virtual")
	if err != nil {
		t.Fatal(err)
	}
	if !loc.VirtualHost || loc.PathStyle {
		t.Fatalf("parsed %+v", loc)
	}
	ctx := context.Background()
	b, err := Open(ctx, loc, Credentials{AccessKey: s3.Access, SecretKey: s3.Secret})
	if err != nil {
		t.Fatalf("virtual-host store: %v", err)
	}
	if err := b.Put(ctx, "data/ab/probe", []byte("virtual"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "data/ab/probe", 100); err != nil || string(got) != "virtual" {
		t.Fatalf("get through virtual-host requests: %q %v", got, err)
	}
	// The object is where a path-style client finds it: the same bucket.
	if _, err := os.Stat(filepath.Join(s3.Dir, bucket, "p", "data", "ab", "probe")); err != nil {
		t.Fatalf("the object is not in bucket %s: %v", bucket, err)
	}
}
