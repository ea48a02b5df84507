package vulcanbackup_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/project-vulcan/vulcan-backup/internal/metrics"
)

// The example alert rules parse, and every vulcan_ metric they use exists.
func TestAlertRules(t *testing.T) {
	data, err := os.ReadFile("deploy/prometheus/vulcan-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	m.BackupSucceeded("manual", time.Now(), 0, 1, 1)
	m.Failed("backup", "archive")
	m.RollbackIncomplete()
	m.DrillFinished(true, time.Now(), map[string]float64{"load": 1}, 1)
	m.OffsiteEnabled(true)
	m.OffsiteCopied(time.Now(), 1, 1, 1)
	families, _ := m.Registry.Gather()
	known := map[string]bool{}
	for _, f := range families {
		known[f.GetName()] = true
	}
	alerts := map[string]bool{}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			for _, word := range strings.FieldsFunc(r.Expr, func(c rune) bool {
				return !(c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9')
			}) {
				if strings.HasPrefix(word, "vulcan_") && !known[word] {
					t.Errorf("alert %s uses unknown metric %s", r.Alert, word)
				}
			}
		}
	}
	for _, a := range []string{"VulcanBackupTooOld", "VulcanOperationFailed", "VulcanRollbackIncomplete", "VulcanNoRestoreDrill", "VulcanOffsiteCopyTooOld"} {
		if !alerts[a] {
			t.Errorf("alert %s missing", a)
		}
	}
}
