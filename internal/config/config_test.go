package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFromEnvDefaultsAndOverrides(t *testing.T) {
	for _, k := range []string{EnvTemporalAddress, EnvUIPort, EnvPaths, EnvRetentionDays, EnvSchedule, EnvServices, EnvDatabaseURL} {
		t.Setenv(k, "")
	}
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.TemporalAddress != "127.0.0.1:7233" || c.UIPort != 8233 || c.RetentionDays != 7 || c.Schedule != "0 2 * * *" ||
		c.Services != "none" || !slices.Equal(c.Paths, []string{"storage"}) || c.TaskQueue != "vulcan-backup" || c.BackupDir != "backups" {
		t.Fatalf("defaults %+v", c)
	}
	t.Setenv(EnvPaths, " storage/, data/uploads ,,")
	t.Setenv(EnvRetentionDays, "14")
	t.Setenv(EnvUIPort, "0")
	c, err = FromEnv()
	if err != nil || !slices.Equal(c.Paths, []string{"storage", "data/uploads"}) || c.RetentionDays != 14 || c.UIPort != 0 {
		t.Fatalf("overrides %+v %v", c, err)
	}
	t.Setenv(EnvRetentionDays, "a week")
	if _, err := FromEnv(); err == nil {
		t.Fatal("a non-number retention was accepted")
	}
}

func TestValidate(t *testing.T) {
	ok := Config{RetentionDays: 7, Paths: []string{"storage"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{RetentionDays: 0, Paths: []string{"storage"}},
		{RetentionDays: 7},
		{RetentionDays: 7, Paths: []string{"/etc"}},
		{RetentionDays: 7, Paths: []string{"../x"}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// A failed step asks by default, for ten minutes, after an hour of retries;
// a value that is neither ask nor rollback is refused.
func TestFailureSettings(t *testing.T) {
	for _, k := range []string{EnvOnFailure, EnvDecisionTimeout, EnvRetryWindow, EnvDrillOnFailure} {
		t.Setenv(k, "")
	}
	c, err := FromEnv()
	if err != nil || c.OnFailure != "ask" || c.DecisionTimeout.String() != "10m0s" || c.RetryWindow.String() != "1h0m0s" {
		t.Fatalf("defaults %q %v %v (%v)", c.OnFailure, c.DecisionTimeout, c.RetryWindow, err)
	}
	t.Setenv(EnvOnFailure, "rollback")
	t.Setenv(EnvRetryWindow, "0")
	if c, err := FromEnv(); err != nil || c.OnFailure != "rollback" || c.RetryWindow != 0 {
		t.Fatalf("overrides %q %v (%v)", c.OnFailure, c.RetryWindow, err)
	}
	if c.DrillOnFailure != "rollback" {
		t.Fatalf("a failed drill step must clean up and fail by default: %q", c.DrillOnFailure)
	}
	t.Setenv(EnvDrillOnFailure, "ask")
	if c, err := FromEnv(); err != nil || c.DrillOnFailure != "ask" {
		t.Fatalf("%s=ask: %q (%v)", EnvDrillOnFailure, c.DrillOnFailure, err)
	}
	for k, v := range map[string]string{EnvOnFailure: "pray", EnvDecisionTimeout: "0s", EnvDrillOnFailure: "later"} {
		t.Run(k, func(t *testing.T) {
			t.Setenv(k, v)
			if _, err := FromEnv(); err == nil {
				t.Fatalf("%s=%s accepted", k, v)
			}
		})
	}
}

func TestFullEvery(t *testing.T) {
	t.Setenv(EnvFullEvery, "")
	if c, err := FromEnv(); err != nil || c.FullEvery != 30*24*time.Hour {
		t.Fatalf("default %v (%v)", c.FullEvery, err)
	}
	for v, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "0": 0, "0d": 0} {
		t.Setenv(EnvFullEvery, v)
		if c, err := FromEnv(); err != nil || c.FullEvery != want {
			t.Errorf("%s: %v (%v), want %v", v, c.FullEvery, err, want)
		}
	}
	for _, v := range []string{"-1d", "xd", "d", "-5h", "monthly"} {
		t.Setenv(EnvFullEvery, v)
		if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), EnvFullEvery) {
			t.Errorf("%s: %v, want an error naming %s", v, err, EnvFullEvery)
		}
	}
}

func TestOffsiteSettings(t *testing.T) {
	t.Setenv(EnvOffsiteParallel, "")
	t.Setenv(EnvOffsiteLimit, "")
	if c, err := FromEnv(); err != nil || c.OffsiteParallel != 4 || c.OffsiteLimit != 0 {
		t.Fatalf("defaults: parallel %d, limit %d (%v)", c.OffsiteParallel, c.OffsiteLimit, err)
	}
	for v, want := range map[string]int64{"0": 0, "1000": 1000, "10k": 10 << 10, "5M": 5 << 20, "1G": 1 << 30} {
		t.Setenv(EnvOffsiteLimit, v)
		if c, err := FromEnv(); err != nil || c.OffsiteLimit != want {
			t.Errorf("limit %s: %d (%v), want %d", v, c.OffsiteLimit, err, want)
		}
	}
	for _, v := range []string{"-1", "fast", "10MB", "M", "99999999999G"} {
		t.Setenv(EnvOffsiteLimit, v)
		if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), EnvOffsiteLimit) {
			t.Errorf("limit %s: %v, want an error naming %s", v, err, EnvOffsiteLimit)
		}
	}
	t.Setenv(EnvOffsiteLimit, "")
	for _, v := range []string{"0", "65", "many"} {
		t.Setenv(EnvOffsiteParallel, v)
		if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), EnvOffsiteParallel) {
			t.Errorf("parallel %s: %v, want an error naming %s", v, err, EnvOffsiteParallel)
		}
	}
}
