// Package metrics holds Vulcan Backup's own Prometheus metrics, on one
// registry that the worker also hands to the Temporal SDK's metrics, so that
// /metrics serves both.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are the collectors. A nil *Metrics records nothing.
type Metrics struct {
	Registry        *prometheus.Registry
	lastSuccess     *prometheus.GaugeVec
	backupDuration  prometheus.Histogram
	backupSize      prometheus.Gauge
	backupFiles     prometheus.Gauge
	failures        *prometheus.CounterVec
	restoreDuration prometheus.Histogram
	retained        prometheus.Gauge
	incomplete      prometheus.Counter
	drillSuccess    prometheus.Gauge
	drillPhase      *prometheus.GaugeVec
	offsiteSuccess  prometheus.Gauge
	offsiteBytes    *prometheus.CounterVec
	offsiteObjects  prometheus.Counter
	offsiteEnabled  prometheus.Gauge
}

// New registers the collectors (and the Go and process collectors) on a
// fresh registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	buckets := []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600}
	m := &Metrics{
		Registry: reg,
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vulcan_backup_last_success_timestamp_seconds",
			Help: "Unix time of the newest verified backup, by kind.",
		}, []string{"kind"}),
		backupDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vulcan_backup_duration_seconds", Help: "Duration of successful backups.", Buckets: buckets,
		}),
		backupSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vulcan_backup_size_bytes", Help: "Size of the newest backup archive.",
		}),
		backupFiles: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vulcan_backup_files", Help: "Files in the newest backup.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vulcan_operation_failures_total", Help: "Failed backups, restores and cleanups, by the step that failed.",
		}, []string{"operation", "step"}),
		restoreDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vulcan_restore_duration_seconds", Help: "Duration of restores (successful or rolled back).", Buckets: buckets,
		}),
		retained: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vulcan_backups_retained", Help: "Backups kept after the last retention run.",
		}),
		incomplete: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vulcan_restore_rollbacks_incomplete_total", Help: "Restores whose rollback stopped at a failure and waited for an operator.",
		}),
		drillSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vulcan_restore_drill_last_success_timestamp_seconds", Help: "Unix time of the last restore drill that passed.",
		}),
		drillPhase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vulcan_restore_drill_duration_seconds", Help: "Duration of each phase of the last restore drill, and its total.",
		}, []string{"phase"}),
		offsiteSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vulcan_offsite_last_success_timestamp_seconds", Help: "Unix time of the last off-site copy that completed.",
		}),
		offsiteBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vulcan_offsite_bytes_total", Help: "Archive bytes of off-site copies: uploaded, or deduplicated (the store held them already).",
		}, []string{"result"}),
		offsiteEnabled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vulcan_offsite_enabled", Help: "1 when the worker copies backups off-site (VULCAN_OFFSITE_URL is set), else 0.",
		}),
		offsiteObjects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vulcan_offsite_objects_uploaded_total", Help: "Objects uploaded to the off-site store.",
		}),
	}
	reg.MustRegister(m.lastSuccess, m.backupDuration, m.backupSize, m.backupFiles, m.failures, m.restoreDuration, m.retained, m.incomplete,
		m.drillSuccess, m.drillPhase, m.offsiteSuccess, m.offsiteBytes, m.offsiteObjects, m.offsiteEnabled,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// BackupSucceeded records a committed, verified backup.
func (m *Metrics) BackupSucceeded(kind string, at time.Time, duration time.Duration, size int64, files int) {
	if m == nil {
		return
	}
	m.lastSuccess.WithLabelValues(kind).Set(float64(at.Unix()))
	if duration > 0 {
		m.backupDuration.Observe(duration.Seconds())
	}
	m.backupSize.Set(float64(size))
	m.backupFiles.Set(float64(files))
}

// KnownBackup seeds the last-success gauge from a backup found on disk at
// start-up, so the metric survives worker restarts.
func (m *Metrics) KnownBackup(kind string, at time.Time) {
	if m == nil {
		return
	}
	g := m.lastSuccess.WithLabelValues(kind)
	if at.Unix() > int64(gaugeValue(g)) {
		g.Set(float64(at.Unix()))
	}
}

// Failed counts a failed operation at a step.
func (m *Metrics) Failed(operation, step string) {
	if m == nil {
		return
	}
	m.failures.WithLabelValues(operation, step).Inc()
}

// RollbackIncomplete counts a restore whose rollback did not complete.
func (m *Metrics) RollbackIncomplete() {
	if m == nil {
		return
	}
	m.incomplete.Inc()
}

// RestoreFinished records a restore's duration.
func (m *Metrics) RestoreFinished(d time.Duration) {
	if m == nil {
		return
	}
	m.restoreDuration.Observe(d.Seconds())
}

// DrillFinished records a restore drill: the duration of each phase and the
// total, and, if it passed, when.
func (m *Metrics) DrillFinished(passed bool, at time.Time, phases map[string]float64, total float64) {
	if m == nil {
		return
	}
	m.drillPhase.Reset()
	for k, v := range phases {
		m.drillPhase.WithLabelValues(k).Set(v)
	}
	m.drillPhase.WithLabelValues("total").Set(total)
	if passed {
		m.drillSuccess.Set(float64(at.Unix()))
	}
}

// KnownDrill seeds the last-success gauge from a drill report found on
// disk at start-up.
func (m *Metrics) KnownDrill(at time.Time) {
	if m == nil {
		return
	}
	if at.Unix() > int64(gaugeValue(m.drillSuccess)) {
		m.drillSuccess.Set(float64(at.Unix()))
	}
}

// OffsiteCopied records a completed off-site copy.
func (m *Metrics) OffsiteCopied(at time.Time, sent, deduped int64, uploaded int) {
	if m == nil {
		return
	}
	m.offsiteSuccess.Set(float64(at.Unix()))
	m.offsiteBytes.WithLabelValues("uploaded").Add(float64(sent))
	m.offsiteBytes.WithLabelValues("deduplicated").Add(float64(deduped))
	m.offsiteObjects.Add(float64(uploaded))
}

// OffsiteEnabled says whether the worker copies off-site, so that an alert
// on stale copies fires only where copies are expected.
func (m *Metrics) OffsiteEnabled(on bool) {
	if m == nil {
		return
	}
	if on {
		m.offsiteEnabled.Set(1)
	} else {
		m.offsiteEnabled.Set(0)
	}
}

// KnownOffsite seeds the last-success gauge from the record of the last
// copy found on disk at start-up.
func (m *Metrics) KnownOffsite(at time.Time) {
	if m == nil {
		return
	}
	if at.Unix() > int64(gaugeValue(m.offsiteSuccess)) {
		m.offsiteSuccess.Set(float64(at.Unix()))
	}
}

// Retained records how many backups retention kept.
func (m *Metrics) Retained(n int) {
	if m == nil {
		return
	}
	m.retained.Set(float64(n))
}

func gaugeValue(g prometheus.Gauge) float64 {
	var out dto.Metric
	if err := g.Write(&out); err != nil || out.Gauge == nil {
		return 0
	}
	return out.Gauge.GetValue()
}
