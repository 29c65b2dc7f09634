-- Indexes for the operations dashboard (internal/dashboard), whose pages must
-- answer within 100 ms with a million job_logs rows and 100,000 sync logs:
-- a schedule's recent runs, newest first, and each integration's latest
-- syncs. Both are read in index order with a LIMIT (keyset pages), so one
-- busy schedule or integration costs no sort of its whole history. Each
-- index costs one more entry per insert into its table.

-- +goose Up
CREATE INDEX IF NOT EXISTS idx_job_logs_schedule_recent ON job_logs(scheduled_job_id, id);
CREATE INDEX IF NOT EXISTS idx_integration_sync_logs_recent ON integration_sync_logs(integration_id, start_time, id);

-- +goose Down
DROP INDEX IF EXISTS idx_integration_sync_logs_recent;
DROP INDEX IF EXISTS idx_job_logs_schedule_recent;
