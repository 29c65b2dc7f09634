-- Whatever an admin writes into a scheduled_jobs row, scheduling goes on.
--
-- An admin who clears next_run_at by hand (UPDATE … SET next_run_at = NULL)
-- left an active row that no daemon would plan again: only a change of the
-- schedule's columns asked for a plan. A NULL written by anyone but a daemon
-- now asks for one too, and the row is scheduled from its expression.
--
-- A row with neither cron_expression nor interval_minutes was refused by
-- the seed's CHECK constraint, whose message quotes the whole row: the
-- trigger refuses it first, in an admin's words.
--
-- The trigger wrote updated_at = now() in the editing session's time zone,
-- over a value the statement set itself. It now keeps an explicit value,
-- and writes its own in the web app's clock: the zone the daemons record in
-- scheduler_settings (their ATIS_DB_TIMEZONE), the session's until one has.

-- +goose Up
CREATE TABLE IF NOT EXISTS scheduler_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE scheduler_settings IS 'ATIS scheduler: what the daemons tell the database''s triggers (atis-scheduler internal)';

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION atis_scheduled_jobs_before_write() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ins CONSTANT boolean := TG_OP = 'INSERT';
    zone text;
BEGIN
    IF NEW.timezone IS NOT NULL AND (ins OR NEW.timezone IS DISTINCT FROM OLD.timezone) THEN
        BEGIN
            PERFORM now() AT TIME ZONE NEW.timezone;
        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE EXCEPTION 'scheduled_jobs.timezone: unknown time zone "%" (use an IANA name such as Asia/Baku or UTC)', NEW.timezone
                USING ERRCODE = 'check_violation';
        END;
    END IF;
    IF NEW.cron_expression IS NULL AND NEW.interval_minutes IS NULL
       AND (ins OR OLD.cron_expression IS NOT NULL OR OLD.interval_minutes IS NOT NULL) THEN
        RAISE EXCEPTION 'scheduled_jobs: set cron_expression (such as ''0 3 * * *'') or interval_minutes'
            USING ERRCODE = 'check_violation';
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
        IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
            BEGIN
                SELECT value INTO zone FROM scheduler_settings WHERE key = 'db_timezone';
            EXCEPTION WHEN undefined_table OR insufficient_privilege THEN
                -- The web app's session may not see the daemon's table (another
                -- search_path, another role): its own zone, as before.
                zone := NULL;
            END;
            NEW.updated_at := now() AT TIME ZONE coalesce(zone, current_setting('TimeZone'));
        END IF;
    ELSIF NEW.next_run_at IS NULL AND OLD.next_run_at IS NOT NULL
          AND current_setting('atis.scheduler', true) IS DISTINCT FROM 'on' THEN
        -- next_run_at cleared by hand: schedule the row from its expression.
        NEW.needs_plan := true;
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE IF EXISTS scheduler_settings;
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
