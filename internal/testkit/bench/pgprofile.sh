#!/usr/bin/env bash
# Where the database's time goes while the real binary, with its default
# settings, works the steady or the burst scenario (by hand, not part of
# make bench): pg_stat_statements over the window, and when the runs were
# queued and fetched relative to their due instant. Run from the repository
# root after `make build`:
#
#   bin/atis-devdb -durable -set shared_preload_libraries=pg_stat_statements -- internal/testkit/bench/pgprofile.sh steady
#   bin/atis-devdb -durable -set shared_preload_libraries=pg_stat_statements -- internal/testkit/bench/pgprofile.sh burst
#
# steady: 10,000 noop schedules, schedule i at second i mod 60 of each minute
# (~167 due each second), measured over DUR seconds (20) after 5 s. burst:
# 10,000 noop schedules all due at second 0 of the next minute. Both keep
# the default overlap policy (skip), as the benchmark does.
mode=${1:-steady}
bin/atis-scheduler migrate >/dev/null 2>&1 || exit 1
psql "$DATABASE_URL" -q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" || exit 1
case $mode in
steady) cron="(g % 60) || ' * * * * *'" ;;
burst) cron="'0 * * * * *'" ;;
*) echo "usage: $0 steady|burst" >&2; exit 2 ;;
esac
psql "$DATABASE_URL" -q -c "TRUNCATE job_logs, river_job" -c "DELETE FROM scheduled_jobs" \
	-c "INSERT INTO scheduled_jobs (name, job_class, cron_expression) SELECT 'n' || g, 'noop', $cron FROM generate_series(1, 10000) g" || exit 1
bin/atis-scheduler run --log-format json >/dev/null 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid' EXIT
sleep 5
psql "$DATABASE_URL" -Atc "SELECT pg_stat_statements_reset()" >/dev/null
from=$(date -u +%FT%T.%NZ)
if [ "$mode" = steady ]; then
	sleep "${DUR:-20}"
else
	s=$(date +%S)
	sleep $((60 - 10#$s + 12))
fi
cpu=$(awk '{print $14 + $15}' "/proc/$pid/stat")
psql "$DATABASE_URL" <<SQL
\echo runs due in the window: lags after the due instant, ms (queued = created_at, started = attempted_at)
WITH j AS (SELECT (args->>'scheduled_for')::timestamptz AS due, created_at, attempted_at, finalized_at FROM river_job
	WHERE kind = 'noop' AND (args->>'scheduled_for')::timestamptz > '$from' AND attempted_at IS NOT NULL)
SELECT count(*) AS runs,
	round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - due)))::int AS queued_p99,
	round(1000 * max(extract(epoch FROM created_at - due)))::int AS queued_max,
	round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - due)))::int AS started_p50,
	round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - due)))::int AS started_p99,
	round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finalized_at - attempted_at)))::int AS fetched_to_final_p50,
	round(1000 * max(extract(epoch FROM finalized_at - due)))::int AS finished_max
FROM j;
\echo runs started, by 10 ms after their due instant (the fetch waves)
WITH j AS (SELECT (args->>'scheduled_for')::timestamptz AS due, attempted_at FROM river_job
	WHERE kind = 'noop' AND (args->>'scheduled_for')::timestamptz > '$from' AND attempted_at IS NOT NULL)
SELECT (floor(extract(epoch FROM attempted_at - due) * 100) * 10)::int AS started_ms, count(*) FROM j GROUP BY 1 ORDER BY 1 LIMIT 30;
\echo the due seconds whose last run started latest
WITH j AS (SELECT (args->>'scheduled_for')::timestamptz AS due, created_at, attempted_at FROM river_job
	WHERE kind = 'noop' AND (args->>'scheduled_for')::timestamptz > '$from' AND attempted_at IS NOT NULL)
SELECT to_char(due, 'HH24:MI:SS') AS due, count(*) AS runs, round(1000 * max(extract(epoch FROM created_at - due)))::int AS queued_max_ms,
	round(1000 * max(extract(epoch FROM attempted_at - due)))::int AS started_max_ms
FROM j GROUP BY due ORDER BY started_max_ms DESC LIMIT 5;
\echo the statements that took the most database time
SELECT calls, round(mean_exec_time::numeric, 2) AS mean_ms, round(total_exec_time::numeric) AS total_ms,
	left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS statement
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC LIMIT 15;
SQL
echo "daemon CPU over the run: $cpu clock ticks (1/100 s)"
