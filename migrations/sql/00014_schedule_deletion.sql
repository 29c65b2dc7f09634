-- A schedule with history can be deleted, by plain SQL as by `jobs delete`,
-- and its history stays readable.
--
-- The seed's job_logs_scheduled_job_id_fkey refused to delete any schedule
-- that had ever run, and a run in progress whose schedule was deleted (its
-- logs first) could not be recorded. The constraint goes: job_logs keeps
-- the id of a deleted schedule, and scheduler_deleted_schedules keeps its
-- name, so `runs list --job NAME`, `runs show` and the dashboard still name
-- it. Nothing is rewritten in job_logs, whatever its size. A deleted
-- schedule's run claim goes with it.

-- +goose Up
CREATE TABLE IF NOT EXISTS scheduler_deleted_schedules (
    id BIGINT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    job_class VARCHAR(200),
    deleted_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_scheduler_deleted_schedules_name ON scheduler_deleted_schedules (name);
COMMENT ON TABLE scheduler_deleted_schedules IS 'ATIS scheduler: the names of deleted schedules, for their history in job_logs (atis-scheduler internal)';

ALTER TABLE job_logs DROP CONSTRAINT IF EXISTS job_logs_scheduled_job_id_fkey;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION atis_scheduled_jobs_before_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO scheduler_deleted_schedules (id, name, job_class) VALUES (OLD.id, OLD.name, OLD.job_class)
        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, job_class = EXCLUDED.job_class, deleted_at = now();
    DELETE FROM scheduler_run_claims WHERE scheduled_job_id = OLD.id;
    RETURN OLD;
END;
$$;
-- +goose StatementEnd
DROP TRIGGER IF EXISTS atis_scheduled_jobs_before_delete ON scheduled_jobs;
CREATE TRIGGER atis_scheduled_jobs_before_delete BEFORE DELETE ON scheduled_jobs
    FOR EACH ROW EXECUTE FUNCTION atis_scheduled_jobs_before_delete();

-- +goose Down
DROP TRIGGER IF EXISTS atis_scheduled_jobs_before_delete ON scheduled_jobs;
DROP FUNCTION IF EXISTS atis_scheduled_jobs_before_delete();
-- History of deleted schedules may hold ids that no longer exist: the
-- constraint comes back without checking old rows.
ALTER TABLE job_logs ADD CONSTRAINT job_logs_scheduled_job_id_fkey
    FOREIGN KEY (scheduled_job_id) REFERENCES scheduled_jobs(id) NOT VALID;
DROP TABLE IF EXISTS scheduler_deleted_schedules;
