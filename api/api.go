// Package api is the worker's HTTP API: start backups and restores, list
// backups, follow operations, health and readiness, and the Prometheus
// metrics. Every route but the health checks needs the bearer token when one
// is configured; a restore always needs one. Requests a browser could forge
// are refused: mutating ones whose body is not JSON or that come from another
// site, and, without a token, any whose Host is not a loopback name (DNS
// rebinding).
package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/project-vulcan/vulcan-backup/control"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/lock"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
	"github.com/project-vulcan/vulcan-backup/internal/store"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// MaxBody bounds request bodies.
const MaxBody = 64 << 10

// Server serves the API.
type Server struct {
	Temporal  client.Client
	TaskQueue string
	Backups   store.Dir
	// Token is the bearer token; empty means no authentication (loopback only).
	Token string
	// RestoreToken authorises restores when Token is empty: a restore
	// always needs a token. Empty with Token empty refuses every restore.
	RestoreToken string
	// Address is the configured listen address; its host is accepted in
	// the Host header beside the loopback names.
	Address string
	// Metrics serves /metrics; nil means 404.
	Metrics http.Handler
	// WebUI builds links to a run, or returns "".
	WebUI func(workflowID, runID string) string
	Log   *slog.Logger
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("POST /api/system/backup", s.guard(s.auth(http.HandlerFunc(s.startBackup))))
	mux.Handle("GET /api/system/backups", s.guard(s.auth(http.HandlerFunc(s.listBackups))))
	mux.Handle("GET /api/system/backups/{id}", s.guard(s.auth(http.HandlerFunc(s.getBackup))))
	mux.Handle("POST /api/system/restore", s.guard(s.restoreAuth(http.HandlerFunc(s.startRestore))))
	mux.Handle("GET /api/system/operations/{workflowId}", s.guard(s.auth(http.HandlerFunc(s.operation))))
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.guard(s.auth(s.Metrics)))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	})
	return mux
}

// NewHTTPServer wraps the handler with timeouts and a header limit.
func (s *Server) NewHTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr: addr, Handler: s.Handler(),
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
	}
}

// CheckAddress refuses to serve without a token on anything but loopback.
func CheckAddress(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("VULCAN_API_ADDR %q: %w", addr, err)
	}
	if token != "" {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("VULCAN_API_ADDR %q is not a loopback address: set VULCAN_API_TOKEN or VULCAN_API_TOKEN_FILE to serve it", addr)
	}
	return nil
}

// LoadToken reads VULCAN_API_TOKEN, or the file VULCAN_API_TOKEN_FILE names.
func LoadToken(token, file string) (string, error) {
	if token != "" && file != "" {
		return "", errors.New("set VULCAN_API_TOKEN or VULCAN_API_TOKEN_FILE, not both")
	}
	if file != "" {
		data, err := os.ReadFile(file) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
		if err != nil {
			return "", fmt.Errorf("VULCAN_API_TOKEN_FILE: %w", err)
		}
		token = strings.TrimSpace(string(data))
		if token == "" {
			return "", fmt.Errorf("VULCAN_API_TOKEN_FILE %s is empty", file)
		}
	}
	return token, nil
}

// RestoreTokenFile is the file in the worker's state directory that holds
// the generated restore token.
const RestoreTokenFile = "api-token"

// EnsureRestoreToken returns the restore token kept in dir, generating it
// (mode 0600) at the first start, and the file's path.
func EnsureRestoreToken(dir string) (token, path string, err error) {
	path = filepath.Join(dir, RestoreTokenFile)
	if data, err := os.ReadFile(path); err == nil { // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
		if tok := strings.TrimSpace(string(data)); tok != "" {
			return tok, path, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", path, fmt.Errorf("restore token: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", path, fmt.Errorf("restore token: %w", err)
	}
	token = hex.EncodeToString(b)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", path, fmt.Errorf("restore token: %w", err)
	}
	if err := fsutil.WriteFileAtomic(path, []byte(token+"\n"), 0o600); err != nil {
		return "", path, fmt.Errorf("restore token: %w", err)
	}
	return token, path, nil
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Token != "" && !bearer(r, s.Token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vulcan"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// restoreAuth always asks for a token: the configured one, or else the one
// the worker generated into its state directory.
func (s *Server) restoreAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := s.Token
		if want == "" {
			want = s.RestoreToken
		}
		if want == "" || !bearer(r, want) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vulcan"`)
			writeError(w, http.StatusUnauthorized, "a restore needs the bearer token (VULCAN_API_TOKEN, or the file the worker logged at start)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer compares the request's bearer token with want in constant time.
func bearer(r *http.Request, want string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) == 1
}

// guard refuses what a web page open in a browser on the host could send:
// a Host that is not a loopback name or the configured address (DNS
// rebinding, unless a token protects the API), and for mutating requests a
// cross-site Origin or Sec-Fetch-Site, or a body that is not JSON (a
// no-cors fetch sends text/plain without a preflight).
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(status int, format string, args ...any) {
			reason := fmt.Sprintf(format, args...)
			s.log().Warn("API request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "reason", reason)
			writeError(w, status, "%s", reason)
		}
		if s.Token == "" && !s.allowedHost(r.Host) {
			refuse(http.StatusMisdirectedRequest, "Host %q is not a loopback name: refused (DNS rebinding)", r.Host)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
				refuse(http.StatusForbidden, "cross-site request (Sec-Fetch-Site: %s): refused", site)
				return
			}
			if origin := r.Header.Get("Origin"); origin != "" && !s.sameOrigin(origin, r.Host) {
				refuse(http.StatusForbidden, "request from origin %q: refused", origin)
				return
			}
			if (r.ContentLength != 0 || r.Header.Get("Content-Type") != "") && !isJSON(r.Header.Get("Content-Type")) {
				refuse(http.StatusUnsupportedMediaType, "the body must be application/json, not %q", r.Header.Get("Content-Type"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// allowedHost accepts loopback names and addresses, and the host of the
// configured address.
func (s *Server) allowedHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	if cfg, _, err := net.SplitHostPort(s.Address); err == nil && cfg != "" && strings.EqualFold(strings.Trim(cfg, "[]"), host) {
		return true
	}
	return false
}

// sameOrigin accepts an Origin that is the API itself: the host and port the
// request was sent to. A page served by another local program (another
// port) is another origin.
func (s *Server) sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, host) && s.allowedHost(u.Host)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	checks := map[string]string{}
	status := http.StatusOK
	if _, err := s.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		checks["temporal"], status = "unreachable: "+err.Error(), http.StatusServiceUnavailable
	} else {
		checks["temporal"] = "ok"
	}
	if err := writable(s.Backups.Path); err != nil {
		checks["backup_dir"], status = err.Error(), http.StatusServiceUnavailable
	} else {
		checks["backup_dir"] = "ok"
	}
	writeJSON(w, status, checks)
}

func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".vulcan-ready-*")
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	name := f.Name()
	f.Close() // #nosec G104 -- closed on an error path or after use; the error that matters is returned
	return os.Remove(name)
}

// started is what a 202 carries.
type started struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Status     string `json:"status_url"`
	WebUI      string `json:"web_ui,omitempty"`
}

func (s *Server) accepted(w http.ResponseWriter, run client.WorkflowRun) {
	res := started{WorkflowID: run.GetID(), RunID: run.GetRunID(), Status: "/api/system/operations/" + run.GetID()}
	if s.WebUI != nil {
		res.WebUI = s.WebUI(run.GetID(), run.GetRunID())
	}
	w.Header().Set("Location", res.Status)
	writeJSON(w, http.StatusAccepted, res)
}

// busy answers 409 when another operation holds the lock and still runs, or
// holds it after a rollback that did not complete.
func (s *Server) busy(ctx context.Context, w http.ResponseWriter) bool {
	h, err := lock.Current(s.Backups.Path)
	if err != nil || h == nil {
		return false
	}
	resp, err := s.Temporal.DescribeWorkflowExecution(ctx, h.WorkflowID, "")
	if h.State != lock.StateIncomplete && (err != nil || resp.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING) {
		return false
	}
	writeError(w, http.StatusConflict, "%v", &lock.BusyError{Holder: *h})
	return true
}

func (s *Server) startBackup(w http.ResponseWriter, r *http.Request) {
	if s.busy(r.Context(), w) {
		return
	}
	run, err := control.StartBackup(r.Context(), s.Temporal, s.TaskQueue, workflows.BackupInput{Kind: workflows.KindManual})
	if err != nil {
		writeError(w, http.StatusBadGateway, "%v", err)
		return
	}
	s.accepted(w, run)
}

type restoreRequest struct {
	Archive string `json:"archive"`
	Confirm bool   `json:"confirm"`
	DryRun  bool   `json:"dry_run"`
}

func (s *Server) startRestore(w http.ResponseWriter, r *http.Request) {
	req, code, err := decodeRestore(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		writeError(w, code, "%v", err)
		return
	}
	if !req.DryRun && s.busy(r.Context(), w) {
		return
	}
	run, err := control.StartRestore(r.Context(), s.Temporal, s.TaskQueue, workflows.RestoreInput{Archive: req.Archive, DryRun: req.DryRun})
	if err != nil {
		writeError(w, http.StatusBadGateway, "%v", err)
		return
	}
	s.accepted(w, run)
}

// decodeRestore reads a restore request: one JSON object, no unknown
// fields, an archive, and confirm or dry_run. It returns the HTTP status of
// a refusal.
func decodeRestore(body io.Reader) (restoreRequest, int, error) {
	var req restoreRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", MaxBody)
		}
		return req, http.StatusBadRequest, fmt.Errorf("body must be JSON {\"archive\": \"...\", \"confirm\": true}: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, http.StatusBadRequest, errors.New("body must hold one JSON object")
	}
	if req.Archive == "" {
		return req, http.StatusBadRequest, errors.New("archive is required")
	}
	if !req.Confirm && !req.DryRun {
		return req, http.StatusBadRequest, errors.New("a restore replaces the current data: send \"confirm\": true (or \"dry_run\": true)")
	}
	return req, 0, nil
}

// backupSummary is one entry of GET /api/system/backups.
type backupSummary struct {
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	Kind     string    `json:"kind"`
	Size     int64     `json:"size"`
	Files    int       `json:"files"`
	Database bool      `json:"database"`
	Verified bool      `json:"verified"`
	Archive  string    `json:"archive"`
}

func (s *Server) listBackups(w http.ResponseWriter, r *http.Request) {
	infos, problems, err := s.Backups.List()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	out := struct {
		Backups  []backupSummary `json:"backups"`
		Problems []store.Problem `json:"problems"`
	}{Backups: []backupSummary{}, Problems: problems}
	if out.Problems == nil {
		out.Problems = []store.Problem{}
	}
	for _, i := range infos {
		out.Backups = append(out.Backups, backupSummary{ID: i.ID, Created: i.CreatedAt, Kind: string(i.Kind), Size: i.Size,
			Files: i.Files, Database: i.Database, Verified: i.Verified, Archive: filepath.Base(i.Archive)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getBackup(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if got, ok := manifest.IDFromName(id); ok {
		id = got
	}
	if !manifest.ValidID(id) {
		writeError(w, http.StatusBadRequest, "backup id %q: want YYYYMMDD_HHMMSS", id)
		return
	}
	m, err := manifest.Read(s.Backups.ManifestPath(id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			writeError(w, http.StatusNotFound, "no backup %s", id)
			return
		}
		writeError(w, http.StatusUnprocessableEntity, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// operationStatus is what GET /api/system/operations/{id} returns.
type operationStatus struct {
	WorkflowID string              `json:"workflow_id"`
	RunID      string              `json:"run_id"`
	Type       string              `json:"type"`
	Status     string              `json:"status"`
	StartedAt  time.Time           `json:"started_at"`
	ClosedAt   *time.Time          `json:"closed_at,omitempty"`
	Progress   *workflows.Progress `json:"progress,omitempty"`
	Result     json.RawMessage     `json:"result,omitempty"`
	Error      string              `json:"error,omitempty"`
	WebUI      string              `json:"web_ui,omitempty"`
}

func (s *Server) operation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("workflowId")
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	desc, err := s.Temporal.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		writeError(w, http.StatusNotFound, "no operation %s", id)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadGateway, "describe %s: %v", id, err)
		return
	}
	info := desc.GetWorkflowExecutionInfo()
	out := operationStatus{
		WorkflowID: id, RunID: info.GetExecution().GetRunId(), Type: info.GetType().GetName(),
		Status:    strings.ToLower(strings.TrimPrefix(info.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_")),
		StartedAt: info.GetStartTime().AsTime(),
	}
	if info.GetCloseTime() != nil {
		t := info.GetCloseTime().AsTime()
		out.ClosedAt = &t
	}
	if s.WebUI != nil {
		out.WebUI = s.WebUI(id, out.RunID)
	}
	if v, err := s.Temporal.QueryWorkflow(ctx, id, out.RunID, workflows.ProgressQuery); err == nil {
		var p workflows.Progress
		if v.Get(&p) == nil {
			out.Progress = &p
		}
	}
	if info.GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		var res json.RawMessage
		if err := s.Temporal.GetWorkflow(ctx, id, out.RunID).Get(ctx, &res); err != nil {
			out.Error = control.Root(err)
		} else {
			out.Result = res
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}
