package offsite

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Credentials are the S3 keys: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
// (or their *_FILE variants), and AWS_SESSION_TOKEN where one is used.
type Credentials struct {
	AccessKey, SecretKey, SessionToken string
}

// CredentialsFromEnv reads the usual AWS variables; NAME_FILE names a file
// holding the value (a Docker or Kubernetes secret).
func CredentialsFromEnv() (Credentials, error) {
	var c Credentials
	var err error
	if c.AccessKey, err = secretEnv("AWS_ACCESS_KEY_ID"); err != nil {
		return c, err
	}
	if c.SecretKey, err = secretEnv("AWS_SECRET_ACCESS_KEY"); err != nil {
		return c, err
	}
	if c.SessionToken, err = secretEnv("AWS_SESSION_TOKEN"); err != nil {
		return c, err
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return c, errors.New("off-site copies need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE)")
	}
	return c, nil
}

func secretEnv(name string) (string, error) {
	if v := os.Getenv(name); v != "" {
		return v, nil
	}
	path := os.Getenv(name + "_FILE")
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path) // #nosec G304 G703 -- the operator's configured secret file
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// ErrNotFound is an object the bucket does not hold.
var ErrNotFound = errors.New("no such object")

// ConfigError is a store the operator must fix: wrong credentials, a missing
// bucket, a CA that does not parse. Retrying as it is will not help.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Bucket is the S3 bucket under a location's prefix.
type Bucket struct {
	loc Location
	c   *minio.Client
}

// Open connects to the location's bucket and checks that the credentials
// reach it: a missing bucket or refused keys are a ConfigError here, at
// start, not halfway through a copy.
func Open(ctx context.Context, loc Location, creds Credentials) (*Bucket, error) {
	tr, err := transport(loc.CAFile)
	if err != nil {
		return nil, &ConfigError{err}
	}
	endpoint := loc.Endpoint
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	lookup := minio.BucketLookupAuto
	switch {
	case loc.PathStyle:
		lookup = minio.BucketLookupPath
	case loc.VirtualHost:
		lookup = minio.BucketLookupDNS
	}
	c, err := minio.New(endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(creds.AccessKey, creds.SecretKey, creds.SessionToken),
		Secure:       loc.Secure,
		Region:       loc.Region,
		BucketLookup: lookup,
		Transport:    tr,
		MaxRetries:   3,
	})
	if err != nil {
		return nil, &ConfigError{fmt.Errorf("off-site store %s: %w", loc, err)}
	}
	b := &Bucket{loc: loc, c: c}
	ok, err := c.BucketExists(ctx, loc.Bucket)
	if err != nil {
		return nil, b.wrap("reach the bucket", err)
	}
	if !ok {
		return nil, &ConfigError{fmt.Errorf("off-site store %s: the bucket %q does not exist", loc, loc.Bucket)}
	}
	return b, nil
}

func transport(caFile string) (http.RoundTripper, error) {
	tr, err := minio.DefaultTransport(true)
	if err != nil {
		return nil, err
	}
	if caFile == "" {
		return tr, nil
	}
	pem, err := os.ReadFile(caFile) // #nosec G304 -- the operator's configured CA bundle
	if err != nil {
		return nil, fmt.Errorf("off-site CA: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("off-site CA %s: no PEM certificate in it", caFile)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr, nil
}

// Location is where the bucket is.
func (b *Bucket) Location() Location { return b.loc }

// wrap names what failed and sorts it: a refusal (a 4xx other than a
// missing object, a timeout or throttling: refused keys, a missing bucket,
// an unknown user) is a ConfigError; the network or a 5xx may pass on a
// retry.
func (b *Bucket) wrap(what string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey":
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
		hint := ""
		switch resp.Code {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken":
			hint = "; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and what they may do in the bucket"
		}
		return &ConfigError{fmt.Errorf("off-site store %s: %s: %s (%s)%s", b.loc, what, resp.Code, strings.TrimSuffix(resp.Message, "."), hint)}
	}
	return fmt.Errorf("off-site store %s: %s: %w", b.loc, what, err)
}

// Locked reports whether the bucket has Object Lock enabled.
func (b *Bucket) Locked(ctx context.Context) bool {
	enabled, _, _, _, err := b.c.GetObjectLockConfig(ctx, b.loc.Bucket)
	return err == nil && enabled == "Enabled"
}

// Put writes body as the object key (relative to the prefix). With a
// non-zero retain, the object is locked (governance mode) until then.
func (b *Bucket) Put(ctx context.Context, key string, body []byte, retain time.Time) error {
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true, SendContentMd5: true}
	if !retain.IsZero() {
		opts.Mode = minio.Governance
		opts.RetainUntilDate = retain.UTC()
	}
	if _, err := b.c.PutObject(ctx, b.loc.Bucket, b.loc.Prefix+key, bytes.NewReader(body), int64(len(body)), opts); err != nil {
		return b.wrap("put "+key, err)
	}
	return nil
}

// Get reads the object key whole, refusing one larger than limit bytes.
func (b *Bucket) Get(ctx context.Context, key string, limit int64) ([]byte, error) {
	o, err := b.c.GetObject(ctx, b.loc.Bucket, b.loc.Prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, b.wrap("get "+key, err)
	}
	defer o.Close()
	body, err := io.ReadAll(io.LimitReader(o, limit+1))
	if err != nil {
		return nil, b.wrap("get "+key, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("get %s: larger than %d bytes", key, limit)
	}
	return body, nil
}

// Exists reports whether the object key is there.
func (b *Bucket) Exists(ctx context.Context, key string) (bool, error) {
	_, err := b.c.StatObject(ctx, b.loc.Bucket, b.loc.Prefix+key, minio.StatObjectOptions{})
	if err == nil {
		return true, nil
	}
	if err = b.wrap("stat "+key, err); errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return false, err
}

// List calls fn with every key (relative to the prefix) under dir, in
// lexical order.
func (b *Bucket) List(ctx context.Context, dir string, fn func(key string, size int64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for o := range b.c.ListObjects(ctx, b.loc.Bucket, minio.ListObjectsOptions{Prefix: b.loc.Prefix + dir, Recursive: true}) {
		if o.Err != nil {
			return b.wrap("list "+dir, o.Err)
		}
		if err := fn(strings.TrimPrefix(o.Key, b.loc.Prefix), o.Size); err != nil {
			return err
		}
	}
	return nil
}

// retained reports whether Object Lock retains key still.
func (b *Bucket) retained(ctx context.Context, key string) bool {
	until, err := b.RetainedUntil(ctx, key)
	return err == nil && until.After(time.Now())
}

// RetainedUntil is when Object Lock stops retaining key (zero if it does
// not): from the retain-until header of a HEAD (some stores answer
// GetObjectRetention in a form the client does not parse), else from
// GetObjectRetention.
func (b *Bucket) RetainedUntil(ctx context.Context, key string) (time.Time, error) {
	info, err := b.c.StatObject(ctx, b.loc.Bucket, b.loc.Prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return time.Time{}, b.wrap("stat "+key, err)
	}
	if v := info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"); v != "" {
		return time.Parse(time.RFC3339, v)
	}
	_, until, err := b.c.GetObjectRetention(ctx, b.loc.Bucket, b.loc.Prefix+key, "")
	if err != nil || until == nil {
		return time.Time{}, nil
	}
	return *until, nil
}

// Extend retains key (governance mode) until then at least: an object a
// new backup refers to is kept as long as that backup.
func (b *Bucket) Extend(ctx context.Context, key string, until time.Time) error {
	mode := minio.Governance
	until = until.UTC()
	if err := b.c.PutObjectRetention(ctx, b.loc.Bucket, b.loc.Prefix+key, minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &until}); err != nil {
		return b.wrap("extend the retention of "+key, err)
	}
	return nil
}

// ListInfo is List with each object's last modification time.
func (b *Bucket) ListInfo(ctx context.Context, dir string, fn func(key string, size int64, modified time.Time) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for o := range b.c.ListObjects(ctx, b.loc.Bucket, minio.ListObjectsOptions{Prefix: b.loc.Prefix + dir, Recursive: true}) {
		if o.Err != nil {
			return b.wrap("list "+dir, o.Err)
		}
		if err := fn(strings.TrimPrefix(o.Key, b.loc.Prefix), o.Size, o.LastModified); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes the object key; one that is gone already is no error.
func (b *Bucket) Remove(ctx context.Context, key string) error {
	if err := b.c.RemoveObject(ctx, b.loc.Bucket, b.loc.Prefix+key, minio.RemoveObjectOptions{}); err != nil {
		if err = b.wrap("remove "+key, err); errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}
