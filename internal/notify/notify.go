// Package notify posts a JSON message to webhooks (VULCAN_NOTIFY_URL). The
// message has a Slack-compatible "text" field and the same facts as
// structured fields, so a chat channel and a program can both read it.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Message is what a webhook receives.
type Message struct {
	Text       string  `json:"text"`
	Operation  string  `json:"operation"`
	Status     string  `json:"status"` // succeeded, warning, failed, rollback-incomplete or awaiting-operator
	Step       string  `json:"step,omitempty"`
	Error      string  `json:"error,omitempty"`
	BackupID   string  `json:"backup_id,omitempty"`
	WorkflowID string  `json:"workflow_id"`
	RunID      string  `json:"run_id"`
	URL        string  `json:"url,omitempty"`
	Duration   float64 `json:"duration_seconds"`
	Host       string  `json:"host,omitempty"`
}

// ParseURLs splits VULCAN_NOTIFY_URL (comma or space separated) and checks
// every entry is an http(s) URL.
func ParseURLs(s string) ([]string, error) {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		u, err := url.Parse(f)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("VULCAN_NOTIFY_URL: %q is not an http(s) URL", redact(f))
		}
		out = append(out, f)
	}
	return out, nil
}

// Send posts msg to every URL and returns the errors of those that did not
// answer 2xx; URLs in errors have their path and query hidden (webhook URLs
// often carry a secret). key, when set, goes in the Idempotency-Key header,
// the same for every attempt at one event, so a receiver can drop a
// repeat; delivered is called for each URL that took the message.
func Send(ctx context.Context, client *http.Client, urls []string, msg Message, key string, delivered func(url string)) error {
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	var errs []error
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			errs = append(errs, fmt.Errorf("notify %s: %w", redact(u), err))
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "vulcan-backup")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := client.Do(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("notify %s: %v", redact(u), errors.Unwrap(err)))
			continue
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // #nosec G104 -- drains the body for connection reuse; the status is what counts
		resp.Body.Close()                                      // #nosec G104 -- closed on an error path or after use; the error that matters is returned
		if resp.StatusCode/100 != 2 {
			errs = append(errs, fmt.Errorf("notify %s: HTTP %d", redact(u), resp.StatusCode))
		} else if delivered != nil {
			delivered(u)
		}
	}
	return errors.Join(errs...)
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(webhook)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}
