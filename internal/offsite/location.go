package offsite

import (
	"fmt"
	"net/url"
	"strings"
)

// Location is where off-site copies go: VULCAN_OFFSITE_URL parsed.
type Location struct {
	Bucket string
	// Prefix is the key prefix under the bucket, empty or ending in "/".
	Prefix string
	// Endpoint is host[:port]; empty means AWS S3.
	Endpoint string
	// Secure is HTTPS (the default; http:// endpoints turn it off).
	Secure bool
	Region string
	// PathStyle forces path-style requests; false lets the client choose
	// (virtual-host for AWS, path for custom endpoints it cannot resolve).
	PathStyle bool
	// VirtualHost forces virtual-host requests.
	VirtualHost bool
	// CAFile is a PEM bundle of extra CAs trusted for the endpoint.
	CAFile string
}

// ParseURL parses s3://bucket/prefix?endpoint=http://host:port&region=R
// &style=path|virtual&ca=/path/ca.pem. Every part but the bucket is optional.
func ParseURL(raw string) (Location, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Location{}, fmt.Errorf("VULCAN_OFFSITE_URL: %w", err)
	}
	if u.Scheme != "s3" {
		return Location{}, fmt.Errorf("VULCAN_OFFSITE_URL %q: the scheme must be s3:// (s3://bucket/prefix?endpoint=...)", raw)
	}
	if u.User != nil {
		return Location{}, fmt.Errorf("VULCAN_OFFSITE_URL: credentials do not belong in the URL; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	loc := Location{Bucket: u.Host, Secure: true}
	if loc.Bucket == "" {
		return Location{}, fmt.Errorf("VULCAN_OFFSITE_URL %q: no bucket (s3://bucket/prefix)", raw)
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if strings.Contains(p, "//") || strings.Contains("/"+p+"/", "/../") || strings.Contains("/"+p+"/", "/./") {
			return Location{}, fmt.Errorf("VULCAN_OFFSITE_URL %q: the prefix %q has empty, . or .. parts", raw, p)
		}
		loc.Prefix = p + "/"
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "style", "ca":
		default:
			return Location{}, fmt.Errorf("VULCAN_OFFSITE_URL: unknown parameter %q (known: endpoint, region, style, ca)", k)
		}
	}
	if ep := q.Get("endpoint"); ep != "" {
		e, err := url.Parse(ep)
		if err != nil || e.Host == "" || (e.Scheme != "http" && e.Scheme != "https") || (e.Path != "" && e.Path != "/") {
			return Location{}, fmt.Errorf("VULCAN_OFFSITE_URL: endpoint %q must be http://host[:port] or https://host[:port]", ep)
		}
		loc.Endpoint, loc.Secure = e.Host, e.Scheme == "https"
	}
	loc.Region = q.Get("region")
	switch s := q.Get("style"); s {
	case "":
	case "path":
		loc.PathStyle = true
	case "virtual":
		loc.VirtualHost = true
	default:
		return Location{}, fmt.Errorf("VULCAN_OFFSITE_URL: style %q: use path or virtual", s)
	}
	loc.CAFile = q.Get("ca")
	return loc, nil
}

// String is the location without secrets, for logs and errors.
func (l Location) String() string {
	s := "s3://" + l.Bucket + "/" + l.Prefix
	if l.Endpoint != "" {
		scheme := "https"
		if !l.Secure {
			scheme = "http"
		}
		s += " at " + scheme + "://" + l.Endpoint
	}
	return s
}
