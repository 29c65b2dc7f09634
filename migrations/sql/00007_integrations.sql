-- Integration syncs: the records synced from each integration, and a default
-- schedule for the dispatcher that starts due syncs (it only touches
-- integrations that are enabled and have a sync_frequency).

-- +goose Up
CREATE TABLE IF NOT EXISTS integration_records (
    id BIGSERIAL PRIMARY KEY,
    integration_id BIGINT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    external_id VARCHAR(255) NOT NULL,
    payload JSONB NOT NULL,
    payload_hash TEXT NOT NULL,
    first_synced_at TIMESTAMP NOT NULL DEFAULT NOW(),
    last_synced_at TIMESTAMP NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMP,
    CONSTRAINT integration_records_integration_external_unique UNIQUE (integration_id, external_id)
);

CREATE INDEX IF NOT EXISTS idx_integration_records_deleted ON integration_records(deleted_at) WHERE deleted_at IS NOT NULL;

INSERT INTO scheduled_jobs (name, job_class, cron_expression, timezone, parameters, max_attempts, retry_delay_minutes, overlap_policy)
SELECT 'integration-dispatch', 'integration_dispatch', '* * * * *', 'UTC', '{}', 1, 0, 'skip'
WHERE NOT EXISTS (SELECT 1 FROM scheduled_jobs WHERE job_class = 'integration_dispatch');

-- +goose Down
DELETE FROM scheduled_jobs WHERE name = 'integration-dispatch' AND run_count = 0;
DROP TABLE IF EXISTS integration_records;
