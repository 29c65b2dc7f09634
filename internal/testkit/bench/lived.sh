#!/usr/bin/env bash
# Issue 18's sequence by hand, with the database's profile: the real binary
# with its default settings works one steady minute (10,000 noop schedules,
# schedule i at second i mod 60), its rows are deleted (as River's job
# cleaner and our retention do), then 10,000 schedules fall due at one
# second on the same database. Prints the burst's lags and the statements
# that took the most time. Run from the repository root after `make build`;
# add auto_explain for the plans (written to DIR/server.log):
#
#   bin/atis-devdb -dir /tmp/lived -set shared_preload_libraries=pg_stat_statements -- internal/testkit/bench/lived.sh
#   bin/atis-devdb -dir /tmp/lived -set shared_preload_libraries=pg_stat_statements,auto_explain \
#       -set auto_explain.log_min_duration=25 -set auto_explain.log_analyze=on -set auto_explain.log_buffers=on \
#       -- internal/testkit/bench/lived.sh
#
# STEADY=0 skips the steady minute (the fresh-database burst).
set -u
bin/atis-scheduler migrate >/dev/null 2>&1 || exit 1
psql "$DATABASE_URL" -q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" || exit 1
STEADY=${STEADY:-60}
psql "$DATABASE_URL" -q -c "DELETE FROM scheduled_jobs WHERE job_class = 'noop'" \
	-c "INSERT INTO scheduled_jobs (name, job_class, cron_expression) SELECT 'n' || g, 'noop', (g % 60) || ' * * * * *' FROM generate_series(1, 10000) g" || exit 1
if [ "$STEADY" -gt 0 ]; then
	bin/atis-scheduler run --log-format json >/dev/null 2>&1 &
	pid=$!
	sleep $((STEADY + 5))
	kill -INT $pid
	wait $pid
fi
psql "$DATABASE_URL" -q -c "DELETE FROM job_logs WHERE job_class = 'noop'" -c "DELETE FROM river_job WHERE kind = 'noop'" \
	-c "DELETE FROM scheduler_run_claims" -c "DELETE FROM scheduled_jobs WHERE job_class = 'noop'" \
	-c "INSERT INTO scheduled_jobs (name, job_class, cron_expression) SELECT 'b' || g, 'noop', '0 * * * * *' FROM generate_series(1, 10000) g" || exit 1
bin/atis-scheduler run --log-format json >/dev/null 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid' EXIT
sleep 3
psql "$DATABASE_URL" -Atc "SELECT pg_stat_statements_reset()" >/dev/null
from=$(date -u +%FT%T.%NZ)
s=$(date +%S)
sleep $((60 - 10#$s + 14))
psql "$DATABASE_URL" <<SQL
\echo the burst: lags after the due instant, ms (queued = created_at, started = attempted_at)
WITH j AS (SELECT (args->>'scheduled_for')::timestamptz AS due, created_at, attempted_at, finalized_at FROM river_job
	WHERE kind = 'noop' AND (args->>'scheduled_for')::timestamptz > '$from')
SELECT count(*) AS runs, count(finalized_at) AS finished,
	round(1000 * max(extract(epoch FROM created_at - due)))::int AS queued_max,
	round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - due)))::int AS started_p99,
	round(1000 * max(extract(epoch FROM finalized_at - due)))::int AS finished_max
FROM j;
\echo the statements that took the most database time
SELECT calls, round(mean_exec_time::numeric, 2) AS mean_ms, round(total_exec_time::numeric) AS total_ms,
	shared_blks_hit + shared_blks_read AS buffers, left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS statement
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC LIMIT 15;
SQL
