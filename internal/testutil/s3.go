package testutil

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a versitygw gateway serving a POSIX directory on a loopback port:
// the real S3 server of the off-site tests.
type S3 struct {
	// Endpoint is http://127.0.0.1:port.
	Endpoint string
	// Dir is the directory behind it: a bucket is Dir/<bucket>.
	Dir            string
	Access, Secret string
	cmd            *exec.Cmd
}

// Versitygw is the gateway binary the Makefile builds into .tools.
func Versitygw(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(RepoRoot(t), ".tools", "versitygw")
	if _, err := os.Stat(bin); err != nil {
		Need(t, "no versitygw (make tools builds it into .tools): "+err.Error())
	}
	return bin
}

// StartS3 starts a gateway for the test and stops it at its end.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	bin := Versitygw(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // #nosec G104 -- a port probe; the gateway binds it next
	s := &S3{Endpoint: "http://" + addr, Dir: t.TempDir(), Access: "vulcan-test", Secret: RandomName("secret")}
	s.cmd = exec.Command(bin, "--port", addr, "--quiet", "posix", s.Dir) // #nosec G204 -- the test's own gateway binary
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.Access, "ROOT_SECRET_ACCESS_KEY="+s.Secret)
	s.cmd.Stderr = os.Stderr // its stdout says only that it runs without IAM
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(s.Stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close() // #nosec G104 -- a readiness probe
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// Stop kills the gateway (a store that becomes unreachable).
func (s *S3) Stop() {
	if s.cmd.Process != nil && s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// Client is a plain S3 client of the gateway, as the root user.
func (s *S3) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Endpoint[len("http://"):], &minio.Options{Creds: credentials.NewStaticV4(s.Access, s.Secret, ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Bucket creates a bucket, with Object Lock when lock is set, and returns
// its name.
func (s *S3) Bucket(t testing.TB, lock bool) string {
	t.Helper()
	name := fmt.Sprintf("vulcan-%d", time.Now().UnixNano()%1_000_000_000)
	if err := s.Client(t).MakeBucket(context.Background(), name, minio.MakeBucketOptions{ObjectLocking: lock}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}

// URL is VULCAN_OFFSITE_URL for bucket/prefix on this gateway.
func (s *S3) URL(bucket, prefix string) string {
	return "s3://" + bucket + "/" + prefix + "?endpoint=" + s.Endpoint + "&style=path"
}
