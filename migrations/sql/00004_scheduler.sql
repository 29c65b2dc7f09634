-- The scheduler's own additions to scheduled_jobs, write-time checks, the
-- triggers that make live edits take effect at once, and the registry of
-- running daemon processes (crash recovery). Additive only: nothing of the
-- seed schema is changed or removed.

-- +goose Up
ALTER TABLE scheduled_jobs ADD COLUMN IF NOT EXISTS misfire_policy VARCHAR(20) NOT NULL DEFAULT 'run_once';
ALTER TABLE scheduled_jobs ADD COLUMN IF NOT EXISTS overlap_policy VARCHAR(20) NOT NULL DEFAULT 'skip';
-- true when next_run_at must be (re)computed: set by the trigger below on
-- insert and whenever the schedule's definition changes.
ALTER TABLE scheduled_jobs ADD COLUMN IF NOT EXISTS needs_plan BOOLEAN NOT NULL DEFAULT true;
-- Why the row cannot be scheduled (bad cron, timezone, class, parameters);
-- NULL when it can. The same text goes to last_run_message.
ALTER TABLE scheduled_jobs ADD COLUMN IF NOT EXISTS schedule_error TEXT;
-- The fire time of the latest tick handled (interval schedules count from it).
ALTER TABLE scheduled_jobs ADD COLUMN IF NOT EXISTS last_due_at TIMESTAMP;
-- Ticks skipped because the previous run was unfinished (overlap_policy).
ALTER TABLE scheduled_jobs ADD COLUMN IF NOT EXISTS skipped_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE scheduled_jobs ADD COLUMN IF NOT EXISTS last_skipped_at TIMESTAMP;
-- Finished runs that failed in a row; reset by a success.
ALTER TABLE scheduled_jobs ADD COLUMN IF NOT EXISTS consecutive_failures INTEGER NOT NULL DEFAULT 0;

-- NOT VALID: enforced for every new write, without failing the migration on
-- an existing database that already holds an odd row (the daemon explains
-- such rows in last_run_message instead).
ALTER TABLE scheduled_jobs ADD CONSTRAINT scheduled_jobs_misfire_policy_check
    CHECK (misfire_policy IN ('run_once', 'skip', 'run_all')) NOT VALID;
ALTER TABLE scheduled_jobs ADD CONSTRAINT scheduled_jobs_overlap_policy_check
    CHECK (overlap_policy IN ('skip', 'allow', 'queue_one')) NOT VALID;
ALTER TABLE scheduled_jobs ADD CONSTRAINT scheduled_jobs_max_attempts_check
    CHECK (max_attempts IS NULL OR max_attempts >= 1) NOT VALID;
ALTER TABLE scheduled_jobs ADD CONSTRAINT scheduled_jobs_retry_delay_minutes_check
    CHECK (retry_delay_minutes IS NULL OR retry_delay_minutes >= 0) NOT VALID;
ALTER TABLE scheduled_jobs ADD CONSTRAINT scheduled_jobs_interval_minutes_check
    CHECK (interval_minutes IS NULL OR interval_minutes > 0) NOT VALID;

CREATE INDEX IF NOT EXISTS idx_scheduled_jobs_needs_plan ON scheduled_jobs(id) WHERE needs_plan;
-- job_logs may also hold the web app's own rows: ours carry the River job id
-- as a number, which the reconciler joins on. (Lookups of one attempt use the
-- seed's index on job_id; every extra index costs each of the row's writes.)
ALTER TABLE job_logs ADD COLUMN IF NOT EXISTS river_job_id BIGINT;
CREATE INDEX IF NOT EXISTS idx_job_logs_unfinished ON job_logs(river_job_id) WHERE status IN ('queued', 'processing');
-- Unfinished runs of one schedule (overlap policy, is_running): a small index
-- of the few rows not yet over.
CREATE INDEX IF NOT EXISTS idx_job_logs_schedule_unfinished ON job_logs(scheduled_job_id, status)
    WHERE status IN ('queued', 'processing');

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION atis_scheduled_jobs_before_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.timezone IS NOT NULL THEN
        BEGIN
            PERFORM now() AT TIME ZONE NEW.timezone;
        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE EXCEPTION 'scheduled_jobs.timezone: unknown time zone "%" (use an IANA name such as Asia/Baku or UTC)', NEW.timezone
                USING ERRCODE = 'check_violation';
        END;
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.needs_plan := true;
    ELSIF (NEW.job_class, NEW.parameters, NEW.cron_expression, NEW.interval_minutes, NEW.timezone,
           NEW.is_active, NEW.misfire_policy, NEW.overlap_policy)
          IS DISTINCT FROM
          (OLD.job_class, OLD.parameters, OLD.cron_expression, OLD.interval_minutes, OLD.timezone,
           OLD.is_active, OLD.misfire_policy, OLD.overlap_policy) THEN
        -- The schedule changed: recompute next_run_at, unless the same
        -- statement set it explicitly.
        NEW.needs_plan := true;
        IF NEW.next_run_at IS NOT DISTINCT FROM OLD.next_run_at THEN
            NEW.next_run_at := NULL;
        END IF;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER atis_scheduled_jobs_before_write
    BEFORE INSERT OR UPDATE ON scheduled_jobs
    FOR EACH ROW EXECUTE FUNCTION atis_scheduled_jobs_before_write();

-- Wake every daemon when someone other than a daemon changes schedules or
-- the scheduler's feature flags. Daemons mark their own transactions with
-- SET LOCAL atis.scheduler = 'on' so that their bookkeeping wakes nobody.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION atis_scheduler_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('atis.scheduler', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('atis_scheduler', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER atis_scheduled_jobs_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON scheduled_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION atis_scheduler_notify();
CREATE TRIGGER atis_feature_flags_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON platform.feature_flags
    FOR EACH STATEMENT EXECUTE FUNCTION atis_scheduler_notify();

-- Every running daemon process, with a heartbeat. A River job still marked
-- running by a process whose heartbeat stopped (kill -9, power loss) is
-- handed back to the queue by the reconciler.
CREATE TABLE IF NOT EXISTS scheduler_instances (
    id VARCHAR(100) PRIMARY KEY,
    hostname VARCHAR(255) NOT NULL,
    pid INTEGER NOT NULL,
    version VARCHAR(50),
    started_at TIMESTAMP NOT NULL DEFAULT NOW(),
    heartbeat_at TIMESTAMP NOT NULL DEFAULT NOW()
);

-- +goose Down
DROP TABLE IF EXISTS scheduler_instances;
DROP TRIGGER IF EXISTS atis_feature_flags_notify ON platform.feature_flags;
DROP TRIGGER IF EXISTS atis_scheduled_jobs_notify ON scheduled_jobs;
DROP FUNCTION IF EXISTS atis_scheduler_notify();
DROP TRIGGER IF EXISTS atis_scheduled_jobs_before_write ON scheduled_jobs;
DROP FUNCTION IF EXISTS atis_scheduled_jobs_before_write();
DROP INDEX IF EXISTS idx_job_logs_schedule_unfinished;
DROP INDEX IF EXISTS idx_job_logs_unfinished;
ALTER TABLE job_logs DROP COLUMN IF EXISTS river_job_id;
DROP INDEX IF EXISTS idx_scheduled_jobs_needs_plan;
ALTER TABLE scheduled_jobs
    DROP CONSTRAINT IF EXISTS scheduled_jobs_interval_minutes_check,
    DROP CONSTRAINT IF EXISTS scheduled_jobs_retry_delay_minutes_check,
    DROP CONSTRAINT IF EXISTS scheduled_jobs_max_attempts_check,
    DROP CONSTRAINT IF EXISTS scheduled_jobs_overlap_policy_check,
    DROP CONSTRAINT IF EXISTS scheduled_jobs_misfire_policy_check,
    DROP COLUMN IF EXISTS consecutive_failures,
    DROP COLUMN IF EXISTS last_skipped_at,
    DROP COLUMN IF EXISTS skipped_count,
    DROP COLUMN IF EXISTS last_due_at,
    DROP COLUMN IF EXISTS schedule_error,
    DROP COLUMN IF EXISTS needs_plan,
    DROP COLUMN IF EXISTS overlap_policy,
    DROP COLUMN IF EXISTS misfire_policy;
