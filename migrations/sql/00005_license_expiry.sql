-- License expiry checks: the record that makes each (license, expiry date,
-- threshold) warning go out once ever, an index for paging through active
-- licenses, and a default schedule so that a fresh install checks licenses
-- without anyone asking.

-- +goose Up
CREATE TABLE IF NOT EXISTS license_expiry_warnings (
    license_id BIGINT NOT NULL REFERENCES licenses(id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL,
    threshold_days INTEGER NOT NULL,
    notification_id BIGINT,
    created_at TIMESTAMP NOT NULL DEFAULT NOW(),
    PRIMARY KEY (license_id, expires_at, threshold_days)
);

CREATE INDEX IF NOT EXISTS idx_licenses_active_id ON licenses(id) WHERE status = 'active';

INSERT INTO scheduled_jobs (name, job_class, cron_expression, timezone, parameters, max_attempts, retry_delay_minutes)
SELECT 'license-expiry-check', 'license_expiry_check', '5 * * * *', 'UTC', '{}', 3, 5
WHERE NOT EXISTS (SELECT 1 FROM scheduled_jobs WHERE job_class = 'license_expiry_check');

-- +goose Down
DELETE FROM scheduled_jobs WHERE name = 'license-expiry-check' AND job_class = 'license_expiry_check' AND run_count = 0;
DROP INDEX IF EXISTS idx_licenses_active_id;
DROP TABLE IF EXISTS license_expiry_warnings;
