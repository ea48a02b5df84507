// Package config holds the settings shared by the worker and the starter. Each
// setting has an environment variable and a default (DESIGN.md §1); the
// binaries expose them as flags that default to the environment.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of Vulcan Backup.
type Config struct {
	TemporalAddress string
	UIPort          int
	Namespace       string
	TaskQueue       string
	Root            string
	Paths           []string
	BackupDir       string
	DatabaseURL     string
	RetentionDays   int
	// UndoWindow is how long a verified restore keeps its pre-restore
	// copies; 0 removes them at once.
	UndoWindow time.Duration
	// StallTimeout is how long pg_dump or psql may move no bytes.
	StallTimeout time.Duration
	// OnFailure is what a step that failed for good does: "ask" waits for
	// an operator's decision for DecisionTimeout, "rollback" does not.
	OnFailure       string
	DecisionTimeout time.Duration
	// RetryWindow is how long a step that fails for a fixable reason is
	// retried, pending, before it has failed for good (a sixth of it while
	// a restore has the application stopped).
	RetryWindow time.Duration
	// FullEvery is how long backups may copy unchanged files' members from
	// earlier backups before one reads every file again; 0 reads every
	// file every time.
	FullEvery time.Duration
	// RTO is the recovery time objective a restore drill is measured
	// against; DrillCheck the operator's command a drill runs.
	RTO        time.Duration
	DrillCheck string
	// DrillOnFailure is what a drill step that failed for good does: "ask"
	// waits for a decision as OnFailure does, "rollback" (the default)
	// cleans up and fails the drill.
	DrillOnFailure string
	// DrillSchedule is the cron (UTC) of the restore drill schedule; ""
	// means none.
	DrillSchedule string
	Schedule      string
	Services      string

	ExecStop, ExecStart, ExecHealth, ExecStatus string
	HealthTimeout                               time.Duration
	ComposeProject                              string
	// APIAddr is the HTTP API's address; "" turns it off.
	APIAddr                string
	APIToken, APITokenFile string
	NotifyURLs             string
	NotifyOnSuccess        bool
	UIURL                  string
	DockerStopTimeout      time.Duration
	SystemdUnits           []string

	// OffsiteURL is the off-site store (s3://bucket/prefix?...); "" means
	// no off-site copies.
	OffsiteURL string
	// OffsiteRecipientsFile holds the age public keys copies are encrypted
	// to; OffsiteIdentityFile the private key a restore or verify from the
	// store needs.
	OffsiteRecipientsFile, OffsiteIdentityFile string
	// OffsiteParallel is how many objects move at once; OffsiteLimit the
	// upload rate in bytes a second (0: none).
	OffsiteParallel int
	OffsiteLimit    int64
}

// Environment variable names.
const (
	EnvTemporalAddress = "TEMPORAL_ADDRESS"
	EnvUIPort          = "VULCAN_UI_PORT"
	EnvNamespace       = "TEMPORAL_NAMESPACE"
	EnvTaskQueue       = "VULCAN_TASK_QUEUE"
	EnvRoot            = "VULCAN_ROOT"
	EnvPaths           = "VULCAN_PATHS"
	EnvBackupDir       = "VULCAN_BACKUP_DIR"
	EnvDatabaseURL     = "DATABASE_URL"
	EnvRetentionDays   = "VULCAN_RETENTION_DAYS"
	EnvUndoWindow      = "VULCAN_UNDO_WINDOW"
	EnvStallTimeout    = "VULCAN_STALL_TIMEOUT"
	EnvOnFailure       = "VULCAN_ON_FAILURE"
	EnvDecisionTimeout = "VULCAN_DECISION_TIMEOUT"
	EnvRetryWindow     = "VULCAN_RETRY_WINDOW"
	EnvRTO             = "VULCAN_RTO"
	EnvFullEvery       = "VULCAN_FULL_EVERY"
	EnvDrillCheck      = "VULCAN_DRILL_CHECK"
	EnvDrillOnFailure  = "VULCAN_DRILL_ON_FAILURE"
	EnvDrillSchedule   = "VULCAN_DRILL_SCHEDULE"
	EnvSchedule        = "VULCAN_SCHEDULE"
	EnvServices        = "VULCAN_SERVICES"
	EnvExecStop        = "VULCAN_EXEC_STOP"
	EnvExecStart       = "VULCAN_EXEC_START"
	EnvExecHealth      = "VULCAN_EXEC_HEALTH"
	EnvExecStatus      = "VULCAN_EXEC_STATUS"
	EnvHealthTimeout   = "VULCAN_HEALTH_TIMEOUT"
	EnvComposeProject  = "VULCAN_COMPOSE_PROJECT"
	EnvDockerStop      = "VULCAN_DOCKER_STOP_TIMEOUT"
	EnvSystemdUnits    = "VULCAN_SYSTEMD_UNITS"
	EnvAPIAddr         = "VULCAN_API_ADDR"
	EnvAPIToken        = "VULCAN_API_TOKEN"
	EnvAPITokenFile    = "VULCAN_API_TOKEN_FILE"
	EnvNotifyURL       = "VULCAN_NOTIFY_URL"
	EnvNotifyOnSuccess = "VULCAN_NOTIFY_ON_SUCCESS"
	EnvUIURL           = "VULCAN_UI_URL"

	EnvOffsiteURL        = "VULCAN_OFFSITE_URL"
	EnvOffsiteRecipients = "VULCAN_OFFSITE_RECIPIENTS_FILE"
	EnvOffsiteIdentity   = "VULCAN_OFFSITE_IDENTITY_FILE"
	EnvOffsiteParallel   = "VULCAN_OFFSITE_PARALLEL"
	EnvOffsiteLimit      = "VULCAN_OFFSITE_LIMIT"
)

// FromEnv reads the configuration from the environment, with defaults.
func FromEnv() (Config, error) {
	c := Config{
		TemporalAddress: env(EnvTemporalAddress, "127.0.0.1:7233"),
		Namespace:       env(EnvNamespace, "default"),
		TaskQueue:       env(EnvTaskQueue, "vulcan-backup"),
		Root:            env(EnvRoot, "."),
		Paths:           SplitPaths(env(EnvPaths, "storage")),
		BackupDir:       env(EnvBackupDir, "backups"),
		DatabaseURL:     os.Getenv(EnvDatabaseURL),
		Schedule:        env(EnvSchedule, "0 2 * * *"),
		Services:        env(EnvServices, "none"),
		ExecStop:        os.Getenv(EnvExecStop),
		ExecStart:       os.Getenv(EnvExecStart),
		ExecHealth:      os.Getenv(EnvExecHealth),
		ExecStatus:      os.Getenv(EnvExecStatus),
		ComposeProject:  os.Getenv(EnvComposeProject),
		SystemdUnits:    SplitPaths(os.Getenv(EnvSystemdUnits)),
		APIAddr:         "127.0.0.1:8000",
		APIToken:        os.Getenv(EnvAPIToken),
		APITokenFile:    os.Getenv(EnvAPITokenFile),
		NotifyURLs:      os.Getenv(EnvNotifyURL),
		UIURL:           os.Getenv(EnvUIURL),

		OffsiteURL:            os.Getenv(EnvOffsiteURL),
		OffsiteRecipientsFile: os.Getenv(EnvOffsiteRecipients),
		OffsiteIdentityFile:   os.Getenv(EnvOffsiteIdentity),
	}
	if v, ok := os.LookupEnv(EnvAPIAddr); ok {
		c.APIAddr = v // empty turns the API off
	}
	switch v := os.Getenv(EnvNotifyOnSuccess); v {
	case "", "0", "false", "no":
	case "1", "true", "yes":
		c.NotifyOnSuccess = true
	default:
		return c, fmt.Errorf("%s=%q: want true or false", EnvNotifyOnSuccess, v)
	}
	var err error
	if c.UIPort, err = intEnv(EnvUIPort, 8233); err != nil {
		return c, err
	}
	if c.RetentionDays, err = intEnv(EnvRetentionDays, 7); err != nil {
		return c, err
	}
	if c.UndoWindow, err = durationEnv(EnvUndoWindow, 24*time.Hour); err != nil {
		return c, err
	}
	if c.UndoWindow < 0 {
		return c, fmt.Errorf("%s=%v: want 0 or more", EnvUndoWindow, c.UndoWindow)
	}
	if c.StallTimeout, err = durationEnv(EnvStallTimeout, 30*time.Minute); err != nil {
		return c, err
	}
	if c.OnFailure, err = failureEnv(EnvOnFailure, "ask"); err != nil {
		return c, err
	}
	if c.DecisionTimeout, err = durationEnv(EnvDecisionTimeout, 10*time.Minute); err != nil {
		return c, err
	}
	if c.RetryWindow, err = durationEnv(EnvRetryWindow, time.Hour); err != nil {
		return c, err
	}
	if c.DecisionTimeout <= 0 || c.RetryWindow < 0 {
		return c, fmt.Errorf("%s=%v, %s=%v: want a positive time-out and a window of 0 or more", EnvDecisionTimeout, c.DecisionTimeout, EnvRetryWindow, c.RetryWindow)
	}
	if c.FullEvery, err = daysEnv(EnvFullEvery, 30*24*time.Hour); err != nil {
		return c, err
	}
	if c.FullEvery < 0 {
		return c, fmt.Errorf("%s=%v: want 0 or more", EnvFullEvery, c.FullEvery)
	}
	if c.RTO, err = durationEnv(EnvRTO, 10*time.Minute); err != nil {
		return c, err
	}
	c.DrillCheck = os.Getenv(EnvDrillCheck)
	if c.DrillOnFailure, err = failureEnv(EnvDrillOnFailure, "rollback"); err != nil {
		return c, err
	}
	c.DrillSchedule = "0 3 1 * *"
	if v, ok := os.LookupEnv(EnvDrillSchedule); ok {
		c.DrillSchedule = v // empty: no drill schedule
	}
	if c.HealthTimeout, err = durationEnv(EnvHealthTimeout, 60*time.Second); err != nil {
		return c, err
	}
	if c.DockerStopTimeout, err = durationEnv(EnvDockerStop, 30*time.Second); err != nil {
		return c, err
	}
	if c.OffsiteParallel, err = intEnv(EnvOffsiteParallel, 4); err != nil {
		return c, err
	}
	if c.OffsiteParallel < 1 || c.OffsiteParallel > 64 {
		return c, fmt.Errorf("%s=%d: want 1 to 64 objects at once", EnvOffsiteParallel, c.OffsiteParallel)
	}
	if c.OffsiteLimit, err = bytesEnv(EnvOffsiteLimit); err != nil {
		return c, err
	}
	return c, nil
}

// SplitPaths splits a comma-separated path list, dropping blanks and
// trailing slashes.
func SplitPaths(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimRight(strings.TrimSpace(p), "/")
		if p != "" {
			out = append(out, filepath.ToSlash(filepath.Clean(p)))
		}
	}
	return out
}

// Validate checks the settings an operation needs.
func (c Config) Validate() error {
	if c.RetentionDays < 1 {
		return fmt.Errorf("%s must be at least 1 (got %d)", EnvRetentionDays, c.RetentionDays)
	}
	if len(c.Paths) == 0 {
		return fmt.Errorf("%s names no path to back up", EnvPaths)
	}
	for _, p := range c.Paths {
		if filepath.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") || p == "." {
			return fmt.Errorf("%s: %q must be a path below %s (relative, without ..)", EnvPaths, p, EnvRoot)
		}
	}
	return nil
}

// AbsRoot is the project root as an absolute path.
func (c Config) AbsRoot() (string, error) {
	root, err := filepath.Abs(c.Root)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", EnvRoot, c.Root, err)
	}
	return root, nil
}

// AbsBackupDir is the backup directory as an absolute path (relative to the root).
func (c Config) AbsBackupDir() (string, error) {
	if filepath.IsAbs(c.BackupDir) {
		return c.BackupDir, nil
	}
	root, err := c.AbsRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, c.BackupDir), nil
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func intEnv(key string, def int) (int, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: not a number", key, v)
	}
	return n, nil
}

// bytesEnv reads a rate in bytes a second: a number with an optional k, M
// or G suffix (powers of 1024); unset or 0 is no limit.
func bytesEnv(key string) (int64, error) {
	v := strings.TrimSpace(os.Getenv(key))
	if v == "" {
		return 0, nil
	}
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "k"), strings.HasSuffix(v, "K"):
		mult = 1 << 10
	case strings.HasSuffix(v, "M"):
		mult = 1 << 20
	case strings.HasSuffix(v, "G"):
		mult = 1 << 30
	}
	if mult > 1 {
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%s=%q: want bytes a second, such as 10M (0 or unset: no limit)", key, os.Getenv(key))
	}
	return n * mult, nil
}

// daysEnv is durationEnv that also takes a number of days, such as 30d.
func daysEnv(key string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(key)
	if n, ok := strings.CutSuffix(v, "d"); ok && n != "" {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("%s=%q: want a number of days such as 30d, or a duration such as 12h", key, v)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return durationEnv(key, def)
}

func durationEnv(key string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a duration such as 30s: %w", key, v, err)
	}
	return d, nil
}

// failureEnv reads what a failed step does, ask or rollback, from the
// variable name; def where it is unset.
func failureEnv(name, def string) (string, error) {
	switch v := os.Getenv(name); v {
	case "":
		return def, nil
	case "ask", "rollback":
		return v, nil
	default:
		return "", fmt.Errorf("%s=%q: want ask or rollback", name, v)
	}
}
