-- The start of a run whose schedule forbids overlap (overlap_policy skip or
-- queue_one) claims its schedule here, under the schedule's advisory lock:
-- one small row per schedule, written in one statement. It used to be the
-- run's job_logs row turned 'processing' at once, an UPDATE that writes all
-- ten of job_logs' indexes and dominated the database's time under load.
-- The job_logs row now follows through the recorder's buffered writes, like
-- every other run's. A claim whose River job is no longer running is free:
-- a crashed process's claim needs no cleanup to be taken over, and the
-- reconciler deletes such rows. An attempt's end releases only its own
-- claim (river_job_id and attempt): the next attempt of the same job may
-- have claimed the schedule before the end was flushed. No foreign key: the claim must not lock the
-- schedule's row, which the scheduler updates on every fire.

-- +goose Up
CREATE TABLE IF NOT EXISTS scheduler_run_claims (
    scheduled_job_id BIGINT PRIMARY KEY,
    river_job_id BIGINT NOT NULL,
    attempt INT NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE scheduler_run_claims IS 'ATIS scheduler: the run being worked for each schedule that forbids overlap (atis-scheduler internal)';

-- +goose Down
DROP TABLE IF EXISTS scheduler_run_claims;
