package testutil

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	// roots trusts the gateway's certificate when it speaks HTTPS.
	roots *x509.CertPool
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
	return startS3(t, nil)
}

// VirtualDomain is the base domain of StartS3Virtual's gateway: requests to
// <bucket>.vulcan.test reach it through VirtualHostProxy.
const VirtualDomain = "vulcan.test"

// StartS3Virtual starts a gateway that also serves virtual-host requests
// (<bucket>.vulcan.test:<port>).
func StartS3Virtual(t testing.TB) *S3 {
	t.Helper()
	return startS3(t, []string{"--virtual-domain", VirtualDomain})
}

// VirtualHostProxy is an HTTP proxy that sends every request for a host
// under VirtualDomain to the same port on 127.0.0.1, its Host header kept
// (the request's signature covers it): virtual-host addressing without DNS.
// A test process points HTTP_PROXY at it before its first request; requests
// to loopback addresses do not use a proxy.
func VirtualHostProxy() *httptest.Server {
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		_, port, _ := net.SplitHostPort(r.In.Host)
		r.Out.URL.Scheme, r.Out.URL.Host = "http", net.JoinHostPort("127.0.0.1", port)
		r.Out.Host = r.In.Host
	}}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.Host)
		if !strings.HasSuffix(host, "."+VirtualDomain) {
			http.Error(w, "this proxy serves *."+VirtualDomain+" only", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
}

// StartS3TLS starts a gateway that speaks HTTPS with a certificate for
// 127.0.0.1 from a CA of its own, and returns it with the CA's PEM file.
func StartS3TLS(t testing.TB) (*S3, string) {
	t.Helper()
	dir := t.TempDir()
	ca, cert, key := selfSignedTLS(t, dir)
	s := startS3(t, []string{"--cert", cert, "--key", key})
	s.Endpoint = "https://" + strings.TrimPrefix(s.Endpoint, "http://")
	s.roots = x509.NewCertPool()
	pemData, err := os.ReadFile(ca) // #nosec G304 -- the test's own CA file
	if err != nil || !s.roots.AppendCertsFromPEM(pemData) {
		t.Fatalf("test CA %s: %v", ca, err)
	}
	return s, ca
}

func startS3(t testing.TB, tls []string) *S3 {
	t.Helper()
	bin := Versitygw(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // #nosec G104 -- a port probe; the gateway binds it next
	s := &S3{Endpoint: "http://" + addr, Dir: t.TempDir(), Access: "vulcan-test", Secret: RandomName("secret")}
	args := append(append([]string{"--port", addr, "--quiet"}, tls...), "posix", s.Dir)
	s.cmd = exec.Command(bin, args...) // #nosec G204 -- the test's own gateway binary
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
	host, secure := strings.CutPrefix(s.Endpoint, "https://")
	opts := &minio.Options{Creds: credentials.NewStaticV4(s.Access, s.Secret, ""), BucketLookup: minio.BucketLookupPath, Secure: secure}
	if secure {
		tr, err := minio.DefaultTransport(true)
		if err != nil {
			t.Fatal(err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: s.roots, MinVersion: tls.VersionTLS12}
		opts.Transport = tr
	}
	c, err := minio.New(strings.TrimPrefix(host, "http://"), opts)
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

// selfSignedTLS writes a CA and a server certificate for 127.0.0.1 signed by
// it into dir: the CA's PEM, the certificate's and its key's.
func selfSignedTLS(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vulcan test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", keyDER)
}

// URL is VULCAN_OFFSITE_URL for bucket/prefix on this gateway.
func (s *S3) URL(bucket, prefix string) string {
	return "s3://" + bucket + "/" + prefix + "?endpoint=" + s.Endpoint + "&style=path"
}
