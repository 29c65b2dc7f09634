package main_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// soakSample is one minute of the soak.
type soakSample struct {
	minute int
	warmUp bool // before the measured minutes
	// runs are the noop runs that started in the minute and completed.
	runs int64
	// lags are the due→started delays (ms) of the runs due in the minute;
	// a run not started when the minute was sampled counts with the time
	// it had waited by then (at least soakMargin), and in late.
	lags []float64
	late int64
	// Total size (heap, TOAST and indexes) and index size of each table,
	// in bytes, and job_logs' live rows.
	riverJob, riverJobIdx     int64
	jobLogs, jobLogsIdx       int64
	jobLogsRows               int64
	schedJobs, schedJobsIdx   int64
	rssKB, goroutines, conns  int64
	retentionDel, cleanerDel  int64 // rows deleted during the minute from job_logs and river_job
	retentionSecs             float64
	vacRiver, vacLogs, vacSch int64 // autovacuums of river_job, job_logs, scheduled_jobs during the minute
}

// soakMargin is how long after a minute ends its runs are read: they have
// started by then unless the daemon is behind.
const soakMargin = 5 * time.Second

// TestSoak (make test-soak; not in CI): a long run stays flat. 30,000 noop
// schedules each fire once a minute, spread over the seconds (500 runs/s),
// on one daemon with the shipped defaults but for ATIS_RIVER_JOB_RETENTION
// (5m), so River's job cleaner deletes as fast as runs are made. Our log
// retention works too: a feeder inserts job_logs rows aged 40 days at the
// same rate, and a `retention` schedule (log_retention, job_logs kept 30
// days) every minute deletes them. Autovacuum is the server's own. Each
// minute it records throughput, the p99 of due→started, the sizes of
// river_job, job_logs and scheduled_jobs, the daemon's RSS, goroutines and
// sessions, and what retention, the cleaner and autovacuum did. The first
// minutes, River's retention and 5 more, are a warm-up, shown but not
// compared: river_job fills up to its retention, and its indexes reach
// their size once autovacuum has recycled the pages of the first deleted
// jobs, a few passes later. Then 30 measured minutes, of which soakVerdict
// compares the last 10 with the first 10. ATIS_SOAK_DURATION (the measured
// part, at least 3m) and ATIS_SOAK_SCHEDULES change the size; a run
// shorter than 30 minutes compares thirds and keeps River's jobs a sixth of
// it (at least 1m), so that a short run checks the test.
func TestSoak(t *testing.T) {
	if os.Getenv("ATIS_SOAK") == "" {
		t.Skip("the soak test runs with ATIS_SOAK=1 (make test-soak)")
	}
	duration := 30 * time.Minute
	if s := os.Getenv("ATIS_SOAK_DURATION"); s != "" {
		var err error
		duration, err = time.ParseDuration(s)
		require.NoError(t, err, "ATIS_SOAK_DURATION")
	}
	schedules := 30_000
	if s := os.Getenv("ATIS_SOAK_SCHEDULES"); s != "" {
		var err error
		schedules, err = strconv.Atoi(s)
		require.NoError(t, err, "ATIS_SOAK_SCHEDULES")
	}
	minutes := int(duration / time.Minute)
	require.GreaterOrEqual(t, minutes, 3, "ATIS_SOAK_DURATION: at least 3m")
	riverRetention := min(5*time.Minute, max(time.Minute, (duration/6).Truncate(time.Minute)))
	warmUp := int((riverRetention + 5*time.Minute) / time.Minute)

	ctx := context.Background()
	url := migratedURL(t)
	pool := observerPool(t, url)
	var autovacuum string
	require.NoError(t, pool.QueryRow(ctx, `SHOW autovacuum`).Scan(&autovacuum))
	require.Equal(t, "on", autovacuum, "the soak needs the server's autovacuum")
	_, err := pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression)
		SELECT 'soak-' || g, 'noop', (g % 60) || ' * * * * *' FROM generate_series(1, $1) g`, schedules)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, parameters)
		VALUES ('retention', 'log_retention', '30 * * * * *', '{"tables": {"job_logs": 30}}')`)
	require.NoError(t, err)
	var firstID int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT min(id) FROM scheduled_jobs WHERE name LIKE 'soak-%'`).Scan(&firstID))

	d := startDaemon(t, "DATABASE_URL="+url, "ATIS_RIVER_JOB_RETENTION="+riverRetention.String())
	addr := waitFor(t, d.lines, "ready")["http_addr"].(string)
	pid := d.cmd.Process.Pid
	// The minutes start once every schedule is planned: a schedule planned
	// after its second of the first minute would not fire in that minute.
	require.True(t, poll(2*time.Minute, 100*time.Millisecond, func() bool {
		var planned bool
		return pool.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM scheduled_jobs WHERE needs_plan)`).Scan(&planned) == nil && planned
	}), "the daemon planned the schedules")
	start := time.Now().Truncate(time.Second).Add(time.Second)

	feedCtx, stopFeed := context.WithCancel(ctx)
	feedErr := make(chan error, 1)
	var feeding sync.WaitGroup
	feeding.Add(1)
	go func() {
		defer feeding.Done()
		feedErr <- feedAgedLogs(feedCtx, pool, start, schedules, firstID)
	}()
	defer func() { stopFeed(); feeding.Wait() }()

	header := fmt.Sprintf("soak: %d noop schedules each once a minute (%d runs/s), %d minutes of warm-up (w) then %d measured, "+
		"one daemon with the shipped defaults except ATIS_RIVER_JOB_RETENTION=%s; `retention` (log_retention, job_logs 30 days) "+
		"every minute on job_logs rows aged 40 days fed at %d/s; autovacuum as the server has it\n",
		schedules, schedules/60, warmUp, minutes, riverRetention, schedules/60)
	t.Log(header)
	t.Log(soakHeader())
	var samples []soakSample
	prev := soakStats(t, pool)
	for k := 1; k <= warmUp+minutes; k++ {
		from, to := start.Add(time.Duration(k-1)*time.Minute), start.Add(time.Duration(k)*time.Minute)
		time.Sleep(time.Until(to.Add(soakMargin)))
		require.True(t, d.alive(), "the daemon exited:\n%s", tail(d.output.String(), 20))
		s := sampleSoak(t, pool, addr, pid, from, to, schedules)
		s.minute, s.warmUp = k, k <= warmUp
		stats := soakStats(t, pool)
		s.retentionDel, s.cleanerDel = stats.del["job_logs"]-prev.del["job_logs"], stats.del["river_job"]-prev.del["river_job"]
		s.vacRiver, s.vacLogs, s.vacSch = stats.vac["river_job"]-prev.vac["river_job"], stats.vac["job_logs"]-prev.vac["job_logs"],
			stats.vac["scheduled_jobs"]-prev.vac["scheduled_jobs"]
		s.jobLogsRows = stats.live["job_logs"]
		prev = stats
		samples = append(samples, s)
		t.Log(soakRow(s))
		select {
		case err := <-feedErr:
			require.NoError(t, err, "the aged job_logs feeder")
			t.Fatal("the aged job_logs feeder stopped")
		default:
		}
	}
	stopFeed()
	feeding.Wait()
	d.stop(t)

	var table strings.Builder
	table.WriteString(header)
	table.WriteString(soakHeader() + "\n")
	for _, s := range samples {
		table.WriteString(soakRow(s) + "\n")
	}
	verdict := soakVerdict(samples[warmUp:])
	if len(verdict) == 0 {
		table.WriteString("flat: the last window is within 20 % of the first on every measure\n")
	}
	t.Log(table.String())

	var retained, failedRetention int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')
		FROM job_logs WHERE job_class = 'log_retention'`).Scan(&retained, &failedRetention))
	require.Zero(t, failedRetention, "log_retention runs failed")
	require.GreaterOrEqual(t, retained, int64(warmUp+minutes-1), "log_retention runs every minute")
	require.Empty(t, verdict, "not flat")
}

// soakWindow is how many minutes each end of the run compares: 10, or a
// third of a run shorter than 30 minutes.
func soakWindow(n int) int { return min(10, n/3) }

// soakVerdict compares the last window of samples with the first: each
// failure says what grew. Throughput's mean must stay within ±20 %; the
// p99 of due→started over the window's runs may grow by 20 % and 50 ms;
// the highest size, RSS, session count and goroutine count by 20 % and a
// little. job_logs grows by design (the soak's runs are kept 30 days): what
// must stay flat is its bytes per live row, which rises when the space of
// the rows retention deletes is not reused (autovacuum falling behind as
// the table grows). In the last window the cleaner and retention must be
// deleting, and autovacuum must have vacuumed each table (job_logs' bytes
// per row cannot tell a vacuum that never ran).
func soakVerdict(samples []soakSample) []string {
	w := soakWindow(len(samples))
	if w == 0 {
		return []string{fmt.Sprintf("%d samples: too few to compare", len(samples))}
	}
	first, last := samples[:w], samples[len(samples)-w:]
	var out []string
	fail := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }

	mean := func(ss []soakSample) float64 {
		var n int64
		for _, s := range ss {
			n += s.runs
		}
		return float64(n) / float64(len(ss))
	}
	if f, l := mean(first), mean(last); f <= 0 || math.Abs(l-f) > 0.2*f {
		fail("throughput: the first window's mean %.0f runs/min, the last's %.0f (±20 %% allowed)", f, l)
	}
	p99 := func(ss []soakSample) float64 {
		var all []float64
		for _, s := range ss {
			all = append(all, s.lags...)
		}
		return percentile(all, 0.99)
	}
	if f, l := p99(first), p99(last); math.IsNaN(f) || math.IsNaN(l) || l > 1.2*f+50 {
		fail("p99 due→started: the first window's %.0f ms, the last's %.0f ms (1.2× + 50 ms allowed)", f, l)
	}

	flat := func(name string, slack float64, v func(soakSample) float64) {
		var f, l float64
		for _, s := range first {
			f = max(f, v(s))
		}
		for _, s := range last {
			l = max(l, v(s))
		}
		if f <= 0 || l > 1.2*f+slack {
			fail("%s grew: the first window's highest %.0f, the last's %.0f", name, f, l)
		}
	}
	const mb = 1 << 20
	flat("river_job table (bytes)", mb, func(s soakSample) float64 { return float64(s.riverJob - s.riverJobIdx) })
	flat("river_job indexes (bytes)", mb, func(s soakSample) float64 { return float64(s.riverJobIdx) })
	flat("scheduled_jobs table (bytes)", mb, func(s soakSample) float64 { return float64(s.schedJobs - s.schedJobsIdx) })
	flat("scheduled_jobs indexes (bytes)", mb, func(s soakSample) float64 { return float64(s.schedJobsIdx) })
	perRow := func(bytes, rows int64) float64 { return float64(bytes) / float64(max(rows, 1)) }
	flat("job_logs table (bytes per live row)", 16, func(s soakSample) float64 { return perRow(s.jobLogs-s.jobLogsIdx, s.jobLogsRows) })
	flat("job_logs indexes (bytes per live row)", 16, func(s soakSample) float64 { return perRow(s.jobLogsIdx, s.jobLogsRows) })
	flat("RSS (kB)", 16<<10, func(s soakSample) float64 { return float64(s.rssKB) })
	flat("database sessions", 2, func(s soakSample) float64 { return float64(s.conns) })
	flat("goroutines", 20, func(s soakSample) float64 { return float64(s.goroutines) })

	var retention, cleaner, vacRiver, vacLogs, vacSch int64
	for _, s := range last {
		retention += s.retentionDel
		cleaner += s.cleanerDel
		vacRiver, vacLogs, vacSch = vacRiver+s.vacRiver, vacLogs+s.vacLogs, vacSch+s.vacSch
	}
	if retention == 0 {
		fail("retention deleted no job_logs rows in the last window")
	}
	if cleaner == 0 {
		fail("River's job cleaner deleted no river_job rows in the last window")
	}
	for table, n := range map[string]int64{"river_job": vacRiver, "job_logs": vacLogs, "scheduled_jobs": vacSch} {
		if n == 0 {
			fail("autovacuum did not vacuum %s in the last window", table)
		}
	}
	slices.Sort(out)
	return out
}

// percentile is the q-quantile of xs (nearest rank); NaN for none.
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]
}

// sampleSoak reads the minute [from, to) of the soak.
func sampleSoak(t *testing.T, pool *pgxpool.Pool, addr string, pid int, from, to time.Time, schedules int) soakSample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := soakSample{rssKB: procStatusKB(pid, "VmRSS")}
	g, err := metric(addr, "go_goroutines")
	require.NoError(t, err, "the daemon's /metrics")
	s.goroutines = int64(g)
	// job_logs' TIMESTAMP columns hold UTC wall clocks (ATIS_DB_TIMEZONE's
	// default); payload.scheduled_for is the run's due instant.
	require.NoError(t, pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'atis-scheduler'),
			(SELECT count(*) FROM job_logs WHERE job_class = 'noop' AND status = 'completed'
				AND start_time >= $1::timestamptz AT TIME ZONE 'UTC' AND start_time < $2::timestamptz AT TIME ZONE 'UTC'),
			(SELECT coalesce(max(extract(epoch FROM end_time - start_time)), 0) FROM job_logs WHERE job_class = 'log_retention'
				AND start_time >= $1::timestamptz AT TIME ZONE 'UTC' AND start_time < $2::timestamptz AT TIME ZONE 'UTC')`,
		from, to).Scan(&s.conns, &s.runs, &s.retentionSecs))
	now := time.Now()
	rows, err := pool.Query(ctx, `SELECT extract(epoch FROM coalesce(start_time, $3::timestamptz AT TIME ZONE 'UTC') - due) * 1000,
			start_time IS NULL
		FROM (SELECT start_time, (payload->>'scheduled_for')::timestamptz AT TIME ZONE 'UTC' AS due FROM job_logs
			WHERE job_class = 'noop' AND attempt = 1 AND (status = 'queued' AND start_time IS NULL
				OR start_time >= $1::timestamptz AT TIME ZONE 'UTC' - interval '1 second')) r
		WHERE due >= $1::timestamptz AT TIME ZONE 'UTC' AND due < $2::timestamptz AT TIME ZONE 'UTC'`, from, to, now)
	require.NoError(t, err)
	for rows.Next() {
		var ms float64
		var waiting bool
		require.NoError(t, rows.Scan(&ms, &waiting))
		s.lags = append(s.lags, ms)
		if waiting {
			s.late++
		}
	}
	require.NoError(t, rows.Err())
	// Each schedule is due once in any minute: a run not in job_logs yet
	// has not even been queued, and has waited at least since the minute
	// ended.
	unqueued := max(0, schedules-len(s.lags))
	for range unqueued {
		s.lags = append(s.lags, float64(now.Sub(to).Milliseconds()))
	}
	s.late += int64(unqueued)
	rels, err := pool.Query(ctx, `SELECT c::text, pg_total_relation_size(c), pg_indexes_size(c)
		FROM unnest('{river_job,job_logs,scheduled_jobs}'::regclass[]) c`)
	require.NoError(t, err)
	for rels.Next() {
		var name string
		var total, idx int64
		require.NoError(t, rels.Scan(&name, &total, &idx))
		switch name {
		case "river_job":
			s.riverJob, s.riverJobIdx = total, idx
		case "job_logs":
			s.jobLogs, s.jobLogsIdx = total, idx
		case "scheduled_jobs":
			s.schedJobs, s.schedJobsIdx = total, idx
		}
	}
	require.NoError(t, rels.Err())
	return s
}

// tableStats are the statistics collector's counters of the soak's tables.
type tableStats struct{ del, vac, live map[string]int64 }

func soakStats(t *testing.T, pool *pgxpool.Pool) tableStats {
	t.Helper()
	st := tableStats{del: map[string]int64{}, vac: map[string]int64{}, live: map[string]int64{}}
	rows, err := pool.Query(context.Background(), `SELECT relname, n_tup_del, autovacuum_count, n_live_tup FROM pg_stat_user_tables
		WHERE schemaname = 'public' AND relname IN ('river_job', 'job_logs', 'scheduled_jobs')`)
	require.NoError(t, err)
	for rows.Next() {
		var name string
		var del, vac, live int64
		require.NoError(t, rows.Scan(&name, &del, &vac, &live))
		st.del[name], st.vac[name], st.live[name] = del, vac, live
	}
	require.NoError(t, rows.Err())
	return st
}

// feedAgedLogs inserts, each second until ctx ends, job_logs rows created
// 40 days before now, as many as the soak's runs (schedules a minute): the
// rows a server that has run for months holds and retention deletes. Their
// statuses, classes and ages are spread as a real history's are.
func feedAgedLogs(ctx context.Context, pool *pgxpool.Pool, start time.Time, schedules int, firstID int64) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var fed int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		due := int64(time.Since(start).Seconds() * float64(schedules) / 60)
		n := min(due-fed, int64(schedules)/6) // at most 10 s of catching up at once
		if n <= 0 {
			continue
		}
		_, err := pool.Exec(ctx, `INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, result,
				error_message, start_time, end_time, duration, scheduled_job_id, created_at)
			SELECT rj::text, rj, (ARRAY['http_request', 'sql', 'integration_sync', 'notification_dispatch', 'license_expiry_check'])[1 + g % 5],
				'default', 1, CASE WHEN g % 20 = 0 THEN 'failed' WHEN g % 50 = 1 THEN 'cancelled' ELSE 'completed' END,
				jsonb_build_object('scheduled_job_id', sid, 'scheduled_for', at AT TIME ZONE 'UTC', 'parameters', '{}'::jsonb),
				CASE WHEN g % 20 = 0 THEN '{}'::jsonb ELSE '{"status": 200, "bytes": 512}'::jsonb END,
				CASE WHEN g % 20 = 0 THEN 'connection refused' WHEN g % 50 = 1 THEN 'cancelled' END,
				at, at + interval '40 milliseconds', 0, sid, at
			FROM (SELECT g, 1000000000000 + g AS rj, $3 + g % $4 AS sid,
					now() AT TIME ZONE 'UTC' - interval '40 days' - (g % 86400) * interval '1 second' AS at
				FROM generate_series($1::bigint, $2::bigint) g) x`, fed+1, fed+n, firstID, schedules)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		fed += n
	}
}

func soakHeader() string {
	return fmt.Sprintf("%5s %6s %7s %6s | %15s %15s %6s %12s | %6s %5s %4s | %7s %7s %5s %8s",
		"min", "runs/s", "p99 ms", "late", "river_job MB", "job_logs MB", "rows k", "sched MB", "RSS MB", "gor", "sess",
		"ret del", "cln del", "ret s", "autovac")
}

// soakRow is one line of the table: sizes as total (indexes).
func soakRow(s soakSample) string {
	mb := func(total, idx int64) string {
		return fmt.Sprintf("%.1f (%.1f)", float64(total)/(1<<20), float64(idx)/(1<<20))
	}
	minute := strconv.Itoa(s.minute)
	if s.warmUp {
		minute += "w"
	}
	return fmt.Sprintf("%5s %6.0f %7.0f %6d | %15s %15s %6d %12s | %6d %5d %4d | %7d %7d %5.1f %8s",
		minute, float64(s.runs)/60, percentile(s.lags, 0.99), s.late,
		mb(s.riverJob, s.riverJobIdx), mb(s.jobLogs, s.jobLogsIdx), s.jobLogsRows/1000, mb(s.schedJobs, s.schedJobsIdx),
		s.rssKB>>10, s.goroutines, s.conns, s.retentionDel, s.cleanerDel, s.retentionSecs,
		fmt.Sprintf("%d/%d/%d", s.vacRiver, s.vacLogs, s.vacSch))
}

// TestSoakVerdict: each of the soak's comparisons passes a flat run (with a
// warm-up and a growing job_logs) and fails when its own measure grows (or,
// for throughput, falls or rises) in the last window, and only then.
func TestSoakVerdict(t *testing.T) {
	t.Parallel()

	flatRun := func() []soakSample {
		var ss []soakSample
		for m := 1; m <= 30; m++ {
			warm := min(1, float64(m)/6) // river_job fills over its 5-minute retention
			s := soakSample{minute: m, runs: 30_000, riverJob: int64(warm * (140 << 20)), riverJobIdx: int64(warm * (40 << 20)),
				schedJobs: 12 << 20, schedJobsIdx: 5 << 20, jobLogsRows: int64(m) * 30_000,
				rssKB: 60 << 10, goroutines: 250, conns: 12, retentionDel: 30_000, cleanerDel: 30_000,
				vacRiver: 1, vacLogs: min(1, int64(m%3)), vacSch: 1}
			s.jobLogs, s.jobLogsIdx = s.jobLogsRows*700, s.jobLogsRows*300
			for i := range 200 {
				s.lags = append(s.lags, float64(80+i%40))
			}
			ss = append(ss, s)
		}
		return ss
	}
	require.Empty(t, soakVerdict(flatRun()))

	grow := func(f func(*soakSample)) []soakSample {
		ss := flatRun()
		for i := 20; i < 30; i++ {
			f(&ss[i])
		}
		return ss
	}
	scale := func(v *int64, by float64) { *v = int64(float64(*v) * by) }
	for name, tc := range map[string]struct {
		change func(*soakSample)
		want   string
	}{
		"ThroughputFalls": {func(s *soakSample) { scale(&s.runs, 0.75) }, "throughput"},
		"ThroughputRises": {func(s *soakSample) { scale(&s.runs, 1.25) }, "throughput"},
		"LagGrows": {func(s *soakSample) {
			for i := range s.lags {
				s.lags[i] *= 2
			}
		}, "p99 due→started"},
		"LateRuns": {func(s *soakSample) {
			s.lags[len(s.lags)-1], s.lags[len(s.lags)-2], s.lags[len(s.lags)-3] = 5000, 5000, 5000
		}, "p99 due→started"},
		"RiverJobTable":       {func(s *soakSample) { s.riverJob += 50 << 20 }, "river_job table"},
		"RiverJobIndexes":     {func(s *soakSample) { s.riverJob += 20 << 20; s.riverJobIdx += 20 << 20 }, "river_job indexes"},
		"ScheduledJobsTable":  {func(s *soakSample) { s.schedJobs += 4 << 20 }, "scheduled_jobs table"},
		"ScheduledJobsIndex":  {func(s *soakSample) { s.schedJobs += 3 << 20; s.schedJobsIdx += 3 << 20 }, "scheduled_jobs indexes"},
		"JobLogsBloat":        {func(s *soakSample) { s.jobLogs += s.jobLogsRows * 300 }, "job_logs table"},
		"JobLogsIndexesBloat": {func(s *soakSample) { s.jobLogs += s.jobLogsRows * 100; s.jobLogsIdx += s.jobLogsRows * 100 }, "job_logs indexes"},
		"RSS":                 {func(s *soakSample) { s.rssKB += 40 << 10 }, "RSS"},
		"Sessions":            {func(s *soakSample) { s.conns += 6 }, "database sessions"},
		"Goroutines":          {func(s *soakSample) { s.goroutines += 100 }, "goroutines"},
		"NoRetention":         {func(s *soakSample) { s.retentionDel = 0 }, "retention deleted no"},
		"NoCleaner":           {func(s *soakSample) { s.cleanerDel = 0 }, "job cleaner deleted no"},
		"NoVacuumRiverJob":    {func(s *soakSample) { s.vacRiver = 0 }, "did not vacuum river_job"},
		"NoVacuumJobLogs":     {func(s *soakSample) { s.vacLogs = 0 }, "did not vacuum job_logs"},
		"NoVacuumScheduled":   {func(s *soakSample) { s.vacSch = 0 }, "did not vacuum scheduled_jobs"},
	} {
		t.Run(name, func(t *testing.T) {
			got := soakVerdict(grow(tc.change))
			require.Len(t, got, 1, "%q", got)
			require.Contains(t, got[0], tc.want)
		})
	}
	require.NotEmpty(t, soakVerdict(flatRun()[:2]), "too short to compare")
}
