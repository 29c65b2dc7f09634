#!/usr/bin/env bash
# End-to-end throughput of the real binary with its default settings, by hand
# (not part of make bench): N noop schedules fire every second (overlap
# allow, misfire skip); after 15 s of warm-up, completed job_logs rows are
# counted over 10 s. Run from the repository root after `make build`:
#
#   N=2000 bin/atis-devdb -durable -- internal/testkit/bench/throughput.sh
#
# It prints completed runs/s, the backlog of available jobs, the daemon's
# peak RSS, and the p50/p99 of due -> started over the last 10 s.
N=${N:-2000}
bin/atis-scheduler migrate >/dev/null 2>&1 || exit 1
psql "$DATABASE_URL" -q -c "DELETE FROM scheduled_jobs" \
	-c "INSERT INTO scheduled_jobs (name, job_class, cron_expression, overlap_policy, misfire_policy)
		SELECT 'n' || g, 'noop', '* * * * * *', 'allow', 'skip' FROM generate_series(1, $N) g" || exit 1
bin/atis-scheduler run --log-format json >/dev/null 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid' EXIT
count() { psql "$DATABASE_URL" -Atc "SELECT count(*) FROM job_logs WHERE status = 'completed'"; }
sleep 15
a=$(count)
sleep 10
b=$(count)
echo "N=$N due/s: completed $(((b - a) / 10)) runs/s;" \
	"available backlog $(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM river_job WHERE state = 'available'");" \
	"$(grep VmHWM /proc/$pid/status | tr -s ' \t' ' ')"
psql "$DATABASE_URL" -Atc "SELECT 'due->started p50/p99 s: ' || (percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY
		extract(epoch FROM start_time - (payload->>'scheduled_for')::timestamptz AT TIME ZONE 'UTC')))::text
	FROM job_logs WHERE status = 'completed' AND start_time > now() AT TIME ZONE 'UTC' - interval '10 seconds'"
