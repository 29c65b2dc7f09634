// Package metrics holds the daemon's Prometheus metrics, all named
// atis_scheduler_*, on a registry of its own.
package metrics

import (
	"context"
	"net/http"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "atis_scheduler"

// lagBuckets cover fire lag from milliseconds to minutes.
var lagBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// Metrics are the daemon's metrics. Its methods are safe for concurrent use.
type Metrics struct {
	registry *prometheus.Registry

	enqueueLag       *prometheus.HistogramVec
	retentionDeleted *prometheus.CounterVec
	retries          *prometheus.CounterVec
	runDuration      *prometheus.HistogramVec
	runsEnqueued     *prometheus.CounterVec
	runsFinished     *prometheus.CounterVec
	skipped          *prometheus.CounterVec
	startLag         *prometheus.HistogramVec
	syncRecords      *prometheus.CounterVec
}

// New returns the metrics of one daemon; pool feeds the pool and queue
// gauges, read at each scrape.
func New(pool *pgxpool.Pool, version string) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		runsEnqueued: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "runs_enqueued_total",
			Help: "Runs enqueued by the scheduler, by job class."}, []string{"job_class"}),
		runsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "runs_finished_total",
			Help: "Runs finished, by job class and status (completed, failed, cancelled)."}, []string{"job_class", "status"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "run_duration_seconds",
			Help: "Duration of the final attempt of finished runs, by job class.", Buckets: prometheus.ExponentialBuckets(.01, 4, 10)},
			[]string{"job_class"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "retries_total",
			Help: "Failed attempts that will be retried, by job class."}, []string{"job_class"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "ticks_skipped_total",
			Help: "Ticks not run, by job class and reason (overlap, misfire)."}, []string{"job_class", "reason"}),
		enqueueLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "fire_lag_enqueue_seconds",
			Help: "Time from a run's due time to its enqueue, by job class.", Buckets: lagBuckets}, []string{"job_class"}),
		startLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "fire_lag_start_seconds",
			Help: "Time from a run's due time to the start of its first attempt, by job class.", Buckets: lagBuckets}, []string{"job_class"}),
		syncRecords: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "sync_records_total",
			Help: "Records synced from integrations, by integration and outcome (created, updated, unchanged, deleted, failed)."},
			[]string{"integration", "outcome"}),
		retentionDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "retention_rows_deleted_total",
			Help: "Rows deleted by log retention, by table."}, []string{"table"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "Always 1; the labels say which build runs.", ConstLabels: prometheus.Labels{"version": version, "go_version": runtime.Version()}})
	build.Set(1)
	m.registry.MustRegister(m.runsEnqueued, m.runsFinished, m.runDuration, m.retries, m.skipped, m.enqueueLag, m.startLag,
		m.syncRecords, m.retentionDeleted, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if pool != nil {
		m.registry.MustRegister(&poolCollector{pool: pool}, &stateCollector{pool: pool})
	}
	return m
}

// ObserveReadiness exports atis_scheduler_ready, 1 while ready (the check
// behind /readyz) returns nil. Call it once.
func (m *Metrics) ObserveReadiness(ready func(context.Context) error) {
	m.registry.MustRegister(&readinessCollector{ready: ready})
}

// SetFailureAlertThreshold exports ATIS_FAILURE_ALERT_THRESHOLD, so that an
// alert rule compares each schedule's failures in a row with the threshold
// the daemon notifies admins at, not with a copy of it. Call it once.
func (m *Metrics) SetFailureAlertThreshold(n int) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "failure_alert_threshold",
		Help: "Failed runs in a row of one schedule before admins are notified (ATIS_FAILURE_ALERT_THRESHOLD)."})
	g.Set(float64(n))
	m.registry.MustRegister(g)
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// RunEnqueued counts a run enqueued lag after its due time.
func (m *Metrics) RunEnqueued(class string, lag time.Duration) {
	m.runsEnqueued.WithLabelValues(class).Inc()
	m.enqueueLag.WithLabelValues(class).Observe(lag.Seconds())
}

// TicksSkipped counts ticks not run.
func (m *Metrics) TicksSkipped(class, reason string, n int) {
	m.skipped.WithLabelValues(class, reason).Add(float64(n))
}

// RunStarted records the lag from due time to the first attempt's start.
func (m *Metrics) RunStarted(class string, lag time.Duration) {
	m.startLag.WithLabelValues(class).Observe(lag.Seconds())
}

// AttemptRetried counts a failed attempt that will be retried.
func (m *Metrics) AttemptRetried(class string) { m.retries.WithLabelValues(class).Inc() }

// RunFinished counts a finished run and its final attempt's duration.
func (m *Metrics) RunFinished(class, status string, took time.Duration) {
	m.runsFinished.WithLabelValues(class, status).Inc()
	m.runDuration.WithLabelValues(class).Observe(took.Seconds())
}

// SyncRecords counts synced records of an integration by outcome.
func (m *Metrics) SyncRecords(integration, outcome string, n int) {
	m.syncRecords.WithLabelValues(integration, outcome).Add(float64(n))
}

// RetentionDeleted counts rows deleted from a table by retention.
func (m *Metrics) RetentionDeleted(table string, n int64) {
	m.retentionDeleted.WithLabelValues(table).Add(float64(n))
}

var (
	poolDesc = prometheus.NewDesc(namespace+"_db_pool_connections", "Connections of the database pool, by state.",
		[]string{"state"}, nil)
	poolWaitDesc = prometheus.NewDesc(namespace+"_db_pool_acquire_wait_seconds_total",
		"Time spent waiting for a pooled connection.", nil, nil)
	queueDesc = prometheus.NewDesc(namespace+"_queue_jobs", "Jobs in River's queue, by state.", []string{"state"}, nil)
)

type poolCollector struct{ pool *pgxpool.Pool }

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- poolDesc; ch <- poolWaitDesc }

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	for state, v := range map[string]int32{"acquired": s.AcquiredConns(), "idle": s.IdleConns(), "total": s.TotalConns(), "max": s.MaxConns()} {
		ch <- prometheus.MustNewConstMetric(poolDesc, prometheus.GaugeValue, float64(v), state)
	}
	ch <- prometheus.MustNewConstMetric(poolWaitDesc, prometheus.CounterValue, s.AcquireDuration().Seconds())
}
