package main_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// TestChaosReplicasKill9: three replicas share 50 every-second schedules
// (overlap allow, misfire run_all) while one replica after another is
// killed with SIGKILL and restarted. Every tick between a schedule's first
// and the start of the settle period must be enqueued exactly once, and
// once scheduling is paused and the queue drained nothing may be left
// stuck.
func TestChaosReplicasKill9(t *testing.T) {
	t.Parallel()

	const (
		replicas  = 3
		schedules = 50
	)
	var (
		chaosFor = chaosDuration(12*time.Second, 60*time.Second)
		settle   = chaosDuration(5*time.Second, 15*time.Second)
		drainFor = chaosDuration(45*time.Second, 90*time.Second)
	)
	ctx := context.Background()
	url := migratedURL(t)
	pool := observerPool(t, url)
	_, err := pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, overlap_policy, misfire_policy)
		SELECT 'chaos-' || g, 'noop', '* * * * * *', 'allow', 'run_all' FROM generate_series(1, $1) g`, schedules)
	require.NoError(t, err)

	env := []string{"DATABASE_URL=" + url, "ATIS_SOFT_STOP_TIMEOUT=1s", "ATIS_POLL_INTERVAL=1s"}
	start := func() *daemon {
		d := startDaemon(t, env...)
		waitFor(t, d.lines, "ready")
		return d
	}
	ds := make([]*daemon, replicas)
	for i := range ds {
		ds[i] = start()
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	kills := 0
	for end := time.Now().Add(chaosFor); time.Now().Before(end); {
		time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond) // the chaos itself: a random pause
		i := rng.IntN(replicas)
		require.NoError(t, ds[i].cmd.Process.Kill())
		_ = ds[i].cmd.Wait()
		kills++
		ds[i] = start()
	}

	// Settle: every replica up, no kills; then wait until every schedule
	// has been handled past the settle start, and pause scheduling.
	settleStart := time.Now().UTC().Truncate(time.Second)
	time.Sleep(settle)
	caughtUp := poll(60*time.Second, 200*time.Millisecond, func() bool {
		var lagging int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM scheduled_jobs WHERE name LIKE 'chaos-%' AND coalesce(last_due_at < $1, true)`,
			settleStart).Scan(&lagging)
		return lagging == 0
	})
	require.True(t, caughtUp, "the replicas did not catch up with the schedules within 60s of the settle period")
	_, err = pool.Exec(ctx, `INSERT INTO platform.feature_flags (key, is_enabled) VALUES ('scheduler.paused', true)`)
	require.NoError(t, err)
	drainStart := time.Now()
	drained := poll(drainFor, 250*time.Millisecond, func() bool {
		var open int
		_ = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM river_job WHERE finalized_at IS NULL)
			+ (SELECT count(*) FROM job_logs WHERE status IN ('queued', 'processing'))`).Scan(&open)
		return open == 0
	})
	drainTook := time.Since(drainStart)

	var ticks, jobs int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(DISTINCT (args->>'scheduled_job_id', args->>'scheduled_for')), count(*)
		FROM river_job WHERE kind = 'noop'`).Scan(&ticks, &jobs))
	dupRiver := column(t, pool, `SELECT args->>'scheduled_job_id' || ' ' || (args->>'scheduled_for') || ' x' || count(*)
		FROM river_job WHERE kind = 'noop' GROUP BY args->>'scheduled_job_id', args->>'scheduled_for' HAVING count(*) > 1`)
	dupLogs := column(t, pool, `SELECT scheduled_job_id || ' ' || (payload->>'scheduled_for') || ' x' || count(*)
		FROM job_logs WHERE attempt = 1 AND job_class = 'noop' GROUP BY scheduled_job_id, payload->>'scheduled_for' HAVING count(*) > 1`)
	unlogged := column(t, pool, `SELECT j.id::text FROM river_job j WHERE j.kind = 'noop'
		AND (SELECT count(*) FROM job_logs l WHERE l.river_job_id = j.id AND l.attempt = 1) <> 1`)
	missing := func(source string) []string {
		return column(t, pool, `WITH got AS (`+source+`),
			bounds AS (SELECT sid, min(tick) AS first FROM got GROUP BY sid)
			SELECT b.sid || ' ' || to_char(g.tick, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
			FROM bounds b, generate_series(b.first, $1::timestamptz, interval '1 second') g(tick)
			WHERE NOT EXISTS (SELECT 1 FROM got WHERE got.sid = b.sid AND got.tick = g.tick)
			ORDER BY 1`, settleStart)
	}
	missingRiver := missing(`SELECT (args->>'scheduled_job_id')::bigint AS sid, (args->>'scheduled_for')::timestamptz AS tick
		FROM river_job WHERE kind = 'noop'`)
	missingLogs := missing(`SELECT scheduled_job_id AS sid, (payload->>'scheduled_for')::timestamptz AS tick
		FROM job_logs WHERE attempt = 1 AND job_class = 'noop'`)
	rescued := dbtest.Scalar[int](t, pool, `SELECT count(*) FROM river_job WHERE kind = 'noop' AND errors::text LIKE '%died%'`)
	fired := dbtest.Scalar[int](t, pool, `SELECT count(DISTINCT args->>'scheduled_job_id') FROM river_job WHERE kind = 'noop'`)

	stuckLogs := column(t, pool, `SELECT l.id || ' ' || l.status || ' river ' || coalesce(j.state::text, 'gone')
		FROM job_logs l LEFT JOIN river_job j ON j.id = l.river_job_id
		WHERE l.status IN ('queued', 'processing') AND (j.id IS NULL OR j.finalized_at IS NOT NULL)`)
	runningDead := deadOwners(t, pool)
	badFlags := column(t, pool, `SELECT s.name || ' is_running=' || coalesce(s.is_running::text, 'null') FROM scheduled_jobs s
		WHERE s.is_running IS DISTINCT FROM EXISTS (SELECT 1 FROM job_logs l WHERE l.scheduled_job_id = s.id AND l.status IN ('queued', 'processing'))`)
	openJobs := column(t, pool, `SELECT state::text || ' x' || count(*) FROM river_job WHERE finalized_at IS NULL GROUP BY state`)

	t.Logf("replicas under kill -9: %d replicas, %d schedules, %s of chaos, %d kills (%d runs rescued from dead replicas); %d ticks enqueued (%d river jobs) up to %s+%s; "+
		"duplicates river=%d job_logs=%d; missing river=%d job_logs=%d; drained=%v in %s",
		replicas, schedules, chaosFor, kills, rescued, ticks, jobs, settleStart.Format(time.TimeOnly), settle,
		len(dupRiver), len(dupLogs), len(missingRiver), len(missingLogs), drained, drainTook.Round(time.Millisecond))

	require.Equal(t, schedules, fired, "every schedule fired")
	requireNone(t, dupRiver, "ticks enqueued twice in river_job (scheduled_job_id, scheduled_for, count)")
	requireNone(t, dupLogs, "ticks with two attempt-1 job_logs rows")
	requireNone(t, unlogged, "river jobs without exactly one attempt-1 job_logs row")
	requireNone(t, missingRiver, "ticks never enqueued (scheduled_job_id, tick)")
	requireNone(t, missingLogs, "ticks without an attempt-1 job_logs row")
	requireNone(t, stuckLogs, "job_logs rows left queued/processing for a finished or vanished river job")
	requireNone(t, runningDead, "river jobs running on a dead process")
	requireNone(t, badFlags, "is_running disagrees with job_logs")
	requireNone(t, openJobs, "river jobs not finalized %s after scheduling was paused", drainFor)
	for _, d := range ds {
		d.stop(t)
	}
}

// requireNone fails with how many rows a check found and the first few.
func requireNone(t *testing.T, rows []string, msg string, args ...any) {
	t.Helper()
	if len(rows) > 0 {
		t.Fatalf("%s: %d, e.g. %q", fmt.Sprintf(msg, args...), len(rows), rows[:min(len(rows), 10)])
	}
}

// instancePID reads the pid out of an instance id (host_pid_suffix).
var instancePID = regexp.MustCompile(`_(\d+)_[0-9a-f]+$`)

// deadOwners lists running river jobs whose last attempt's process is gone.
func deadOwners(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id, coalesce(attempted_by[array_upper(attempted_by, 1)], '')
		FROM river_job WHERE state = 'running'`)
	require.NoError(t, err)
	type owned struct {
		ID    int64
		Owner string
	}
	running, err := pgx.CollectRows(rows, pgx.RowToStructByPos[owned])
	require.NoError(t, err)
	var dead []string
	for _, r := range running {
		m := instancePID.FindStringSubmatch(r.Owner)
		pid := 0
		if m != nil {
			pid, _ = strconv.Atoi(m[1])
		}
		if pid == 0 || syscall.Kill(pid, 0) == syscall.ESRCH {
			dead = append(dead, strconv.FormatInt(r.ID, 10)+" on "+r.Owner)
		}
	}
	return dead
}

// column returns the single text column of every row of a query.
func column(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql, args...)
	require.NoError(t, err, sql)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err, sql)
	return out
}
