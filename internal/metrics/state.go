package metrics

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// The state gauges say what the database holds now, read at each scrape:
// every replica exports the same values (alert rules aggregate them away),
// and they survive a restart, which in-process counters do not.
var (
	heartbeatAgeDesc = prometheus.NewDesc(namespace+"_instance_heartbeat_age_seconds",
		"Seconds since each registered daemon's last heartbeat (scheduler_instances).", []string{"scheduler_instance"}, nil)
	consecutiveFailuresDesc = prometheus.NewDesc(namespace+"_schedule_consecutive_failures",
		"Failed runs in a row of each schedule failing now (scheduled_jobs.consecutive_failures > 0), at most 100 schedules.",
		[]string{"scheduled_job_id", "scheduled_job", "job_class"}, nil)
	lastRunDesc = prometheus.NewDesc(namespace+"_class_last_run_timestamp_seconds",
		"When a run of each job class last finished, over its active schedules (one never run counts from its creation).",
		[]string{"job_class"}, nil)
	failedSyncsDesc = prometheus.NewDesc(namespace+"_integration_failed_syncs",
		"Failed syncs in a row of each enabled integration failing now (up to 100 counted), at most 100 integrations.",
		[]string{"integration"}, nil)
	deliveriesFailingDesc = prometheus.NewDesc(namespace+"_deliveries_failing",
		"Notification deliveries not getting through, by integration and state: retrying (pending or sending after an error) "+
			"and given_up (failed in the last 24 hours).", []string{"integration", "state"}, nil)
	retentionUnfinishedDesc = prometheus.NewDesc(namespace+"_retention_pass_unfinished",
		"1 for each table whose log retention pass stopped at its time budget and goes on at the next run (retention_progress).",
		[]string{"table"}, nil)
)

// stateQueries are the state gauges' queries; each yields text labels then
// one float value. Their LIMITs cap the series one gauge exports per
// scrape: a thousand failing schedules need a person, not a thousand series.
var stateQueries = []struct {
	desc *prometheus.Desc
	sql  string
}{
	{queueDesc, `SELECT state::text, count(*)::float8 FROM river_job GROUP BY state`},
	{heartbeatAgeDesc, `SELECT id, extract(epoch FROM now() - heartbeat_at::timestamptz)::float8 FROM scheduler_instances
		ORDER BY id LIMIT 100`},
	{consecutiveFailuresDesc, `SELECT id::text, name, job_class, consecutive_failures::float8 FROM scheduled_jobs
		WHERE consecutive_failures > 0 ORDER BY consecutive_failures DESC, id LIMIT 100`},
	{lastRunDesc, `SELECT job_class, extract(epoch FROM max(coalesce(last_run_at, created_at))::timestamptz)::float8
		FROM scheduled_jobs WHERE is_active GROUP BY job_class HAVING max(coalesce(last_run_at, created_at)) IS NOT NULL`},
	// The latest 100 finished syncs of each integration, read by
	// idx_integration_sync_logs_recent; the failures before the newest
	// success are the streak.
	{failedSyncsDesc, `SELECT i.name, f.n::float8 FROM integrations i
		CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE streak) n FROM (
			SELECT bool_and(status = 'failed') OVER (ORDER BY start_time DESC, id DESC) streak
			FROM integration_sync_logs WHERE integration_id = i.id AND status IN ('completed', 'failed')
			ORDER BY start_time DESC, id DESC LIMIT 100) r) f
		WHERE coalesce(i.is_enabled, false) AND f.n > 0 ORDER BY i.id LIMIT 100`},
	{deliveriesFailingDesc, `SELECT coalesce(i.name, d.integration_id::text), s.state, count(*)::float8
		FROM notification_deliveries d LEFT JOIN integrations i ON i.id = d.integration_id
		CROSS JOIN LATERAL (SELECT CASE WHEN d.status = 'failed' THEN 'given_up' ELSE 'retrying' END state) s
		WHERE (d.status IN ('pending', 'sending') AND d.last_error IS NOT NULL)
		   OR (d.status = 'failed' AND d.updated_at::timestamptz >= now() - interval '1 day')
		GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 200`},
	{retentionUnfinishedDesc, `SELECT table_name, 1::float8 FROM retention_progress ORDER BY table_name LIMIT 100`},
}

// stateCollector reads the queue and state gauges at each scrape; a query
// that fails or takes over two seconds leaves its gauge out.
type stateCollector struct{ pool *pgxpool.Pool }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, q := range stateQueries {
		ch <- q.desc
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, q := range stateQueries {
		collectRows(ctx, c.pool, q.desc, q.sql, ch)
	}
}

// collectRows sends one gauge per row of sql: its text columns are the
// labels, its last column the value.
func collectRows(ctx context.Context, pool *pgxpool.Pool, desc *prometheus.Desc, sql string, ch chan<- prometheus.Metric) {
	rows, err := pool.Query(ctx, sql)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil || len(vals) == 0 {
			return
		}
		labels := make([]string, 0, len(vals)-1)
		for _, v := range vals[:len(vals)-1] {
			s, _ := v.(string)
			labels = append(labels, s)
		}
		if f, ok := vals[len(vals)-1].(float64); ok {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, f, labels...)
		}
	}
}

// readinessCollector exports whether the daemon is ready, asking at each
// scrape what /readyz asks.
type readinessCollector struct {
	ready func(context.Context) error
}

var readyDesc = prometheus.NewDesc(namespace+"_ready",
	"1 when the daemon is ready (what /readyz answers 200 to: database answers, schema current, job runner running), else 0.", nil, nil)

func (c *readinessCollector) Describe(ch chan<- *prometheus.Desc) { ch <- readyDesc }

func (c *readinessCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v := 1.0
	if c.ready(ctx) != nil {
		v = 0
	}
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, v)
}
