-- Write-time checks of scheduled_jobs that never refuse the daemon's own
-- bookkeeping on a row written before them.
--
-- 00004 added CHECK constraints NOT VALID, so that an existing ATİS database
-- with an odd row (interval_minutes = 0, a time zone that is not an IANA
-- name) could still be migrated. But a CHECK constraint is evaluated on
-- every new version of a row: the daemon's own UPDATE that explains such a
-- row (schedule_error, last_run_message) or flips is_running was refused
-- too, and the one refused statement failed the whole scheduling batch on
-- every cycle. The same checks now run in the BEFORE trigger, on insert and
-- on an update that changes the checked column: an admin's bad write is
-- still refused with the same message, while a row that predates the checks
-- can be set aside and explained, and keeps its bad value until someone
-- edits it.

-- +goose Up
ALTER TABLE scheduled_jobs
    DROP CONSTRAINT IF EXISTS scheduled_jobs_misfire_policy_check,
    DROP CONSTRAINT IF EXISTS scheduled_jobs_overlap_policy_check,
    DROP CONSTRAINT IF EXISTS scheduled_jobs_max_attempts_check,
    DROP CONSTRAINT IF EXISTS scheduled_jobs_retry_delay_minutes_check,
    DROP CONSTRAINT IF EXISTS scheduled_jobs_interval_minutes_check;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION atis_scheduled_jobs_before_write() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ins CONSTANT boolean := TG_OP = 'INSERT';
BEGIN
    IF NEW.timezone IS NOT NULL AND (ins OR NEW.timezone IS DISTINCT FROM OLD.timezone) THEN
        BEGIN
            PERFORM now() AT TIME ZONE NEW.timezone;
        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE EXCEPTION 'scheduled_jobs.timezone: unknown time zone "%" (use an IANA name such as Asia/Baku or UTC)', NEW.timezone
                USING ERRCODE = 'check_violation';
        END;
    END IF;
    IF NEW.interval_minutes IS NOT NULL AND NEW.interval_minutes <= 0
       AND (ins OR NEW.interval_minutes IS DISTINCT FROM OLD.interval_minutes) THEN
        RAISE EXCEPTION 'scheduled_jobs.interval_minutes: % must be greater than 0', NEW.interval_minutes
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.max_attempts IS NOT NULL AND NEW.max_attempts < 1
       AND (ins OR NEW.max_attempts IS DISTINCT FROM OLD.max_attempts) THEN
        RAISE EXCEPTION 'scheduled_jobs.max_attempts: % must be at least 1', NEW.max_attempts
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.retry_delay_minutes IS NOT NULL AND NEW.retry_delay_minutes < 0
       AND (ins OR NEW.retry_delay_minutes IS DISTINCT FROM OLD.retry_delay_minutes) THEN
        RAISE EXCEPTION 'scheduled_jobs.retry_delay_minutes: % must not be negative', NEW.retry_delay_minutes
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.misfire_policy NOT IN ('run_once', 'skip', 'run_all')
       AND (ins OR NEW.misfire_policy IS DISTINCT FROM OLD.misfire_policy) THEN
        RAISE EXCEPTION 'scheduled_jobs.misfire_policy: "%" is not one of run_once, skip, run_all', NEW.misfire_policy
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.overlap_policy NOT IN ('skip', 'allow', 'queue_one')
       AND (ins OR NEW.overlap_policy IS DISTINCT FROM OLD.overlap_policy) THEN
        RAISE EXCEPTION 'scheduled_jobs.overlap_policy: "%" is not one of skip, allow, queue_one', NEW.overlap_policy
            USING ERRCODE = 'check_violation';
    END IF;
    IF ins THEN
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

-- How a process is told apart from another with the same hostname and pid
-- (containers with host networking, cloned VMs): the kernel's boot id and
-- the pid namespace. Only a process with the same key can be looked up by
-- pid; any other is dead only when its heartbeat stops.
ALTER TABLE scheduler_instances ADD COLUMN IF NOT EXISTS host_key VARCHAR(200);

-- +goose Down
ALTER TABLE scheduler_instances DROP COLUMN IF EXISTS host_key;

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
