-- Log retention and linked-record cleanup: where an unfinished retention
-- pass stopped (it continues from there on the next run), and default
-- schedules for both jobs, created inactive: retention deletes data, so it
-- starts only when an admin turns it on (UPDATE scheduled_jobs SET
-- is_active = true WHERE name = 'log-retention', or `jobs resume`).

-- +goose Up
CREATE TABLE IF NOT EXISTS retention_progress (
    table_name VARCHAR(200) PRIMARY KEY,
    next_block BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL DEFAULT NOW()
);

INSERT INTO scheduled_jobs (name, job_class, cron_expression, timezone, parameters, is_active, max_attempts, retry_delay_minutes)
SELECT 'log-retention', 'log_retention', '15 3 * * *', 'UTC', '{}', false, 3, 10
WHERE NOT EXISTS (SELECT 1 FROM scheduled_jobs WHERE job_class = 'log_retention');

INSERT INTO scheduled_jobs (name, job_class, cron_expression, timezone, parameters, is_active, max_attempts, retry_delay_minutes)
SELECT 'linked-record-cleanup', 'linked_record_cleanup', '45 3 * * *', 'UTC', '{}', false, 3, 10
WHERE NOT EXISTS (SELECT 1 FROM scheduled_jobs WHERE job_class = 'linked_record_cleanup');

-- +goose Down
DELETE FROM scheduled_jobs WHERE name IN ('log-retention', 'linked-record-cleanup') AND run_count = 0;
DROP TABLE IF EXISTS retention_progress;
