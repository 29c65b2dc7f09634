-- Integration syncs: the records synced from each integration, and a default
-- schedule for the dispatcher that starts due syncs (it only touches
-- integrations that are enabled and have a sync_frequency).

-- integration_records.integration_id has no foreign key: its per-row check
-- cost as much as the rest of a 100k-record sync. A sync holds FOR KEY SHARE
-- on its integration while it writes (so the integration cannot go away
-- under it), and the trigger below deletes an integration's records with it.

-- +goose Up
CREATE TABLE IF NOT EXISTS integration_records (
    id BIGSERIAL PRIMARY KEY,
    integration_id BIGINT NOT NULL,
    external_id VARCHAR(255) NOT NULL,
    payload JSONB NOT NULL,
    payload_hash TEXT NOT NULL,
    first_synced_at TIMESTAMP NOT NULL DEFAULT NOW(),
    last_synced_at TIMESTAMP NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMP,
    CONSTRAINT integration_records_integration_external_unique UNIQUE (integration_id, external_id)
);

CREATE INDEX IF NOT EXISTS idx_integration_records_deleted ON integration_records(deleted_at) WHERE deleted_at IS NOT NULL;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION atis_integration_records_cascade() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM integration_records WHERE integration_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER atis_integration_records_cascade
    AFTER DELETE ON integrations REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION atis_integration_records_cascade();

INSERT INTO scheduled_jobs (name, job_class, cron_expression, timezone, parameters, max_attempts, retry_delay_minutes, overlap_policy)
SELECT 'integration-dispatch', 'integration_dispatch', '* * * * *', 'UTC', '{}', 1, 0, 'skip'
WHERE NOT EXISTS (SELECT 1 FROM scheduled_jobs WHERE job_class = 'integration_dispatch');

-- +goose Down
DELETE FROM scheduled_jobs WHERE name = 'integration-dispatch' AND run_count = 0;
DROP TRIGGER IF EXISTS atis_integration_records_cascade ON integrations;
DROP FUNCTION IF EXISTS atis_integration_records_cascade();
DROP TABLE IF EXISTS integration_records;
