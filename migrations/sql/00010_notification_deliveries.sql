-- Notification deliveries: one row per (notification, integration) that a
-- delivery integration (webhook, smtp) is to receive, claimed by one
-- notification_dispatch run at a time; and a default schedule for the
-- dispatch, every minute.
--
-- status: pending (due at next_attempt_at), sending (claimed until
-- lease_until; a run that died leaves it so, and it is sent again once the
-- lease ends), delivered, failed (given up: permanent error or max_attempts).

-- +goose Up
CREATE TABLE IF NOT EXISTS notification_deliveries (
    id BIGSERIAL PRIMARY KEY,
    notification_id BIGINT NOT NULL REFERENCES system_notifications(id) ON DELETE CASCADE,
    integration_id BIGINT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    status VARCHAR(20) NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at TIMESTAMP NOT NULL DEFAULT NOW(),
    lease_until TIMESTAMP,
    delivered_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP NOT NULL DEFAULT NOW(),
    CONSTRAINT notification_deliveries_unique UNIQUE (notification_id, integration_id),
    CONSTRAINT notification_deliveries_status_check CHECK (status IN ('pending', 'sending', 'delivered', 'failed'))
);

-- What a dispatch claims: the due rows of one integration.
CREATE INDEX IF NOT EXISTS idx_notification_deliveries_due ON notification_deliveries(integration_id, next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX IF NOT EXISTS idx_notification_deliveries_integration ON notification_deliveries(integration_id, id);
-- What a dispatch scans for new notifications.
CREATE INDEX IF NOT EXISTS idx_system_notifications_created_at ON system_notifications(created_at);

INSERT INTO scheduled_jobs (name, job_class, cron_expression, timezone, parameters, max_attempts, retry_delay_minutes, overlap_policy)
SELECT 'notification-dispatch', 'notification_dispatch', '* * * * *', 'UTC', '{}', 1, 0, 'skip'
WHERE NOT EXISTS (SELECT 1 FROM scheduled_jobs WHERE job_class = 'notification_dispatch');

-- +goose Down
DELETE FROM scheduled_jobs WHERE name = 'notification-dispatch' AND run_count = 0;
DROP INDEX IF EXISTS idx_system_notifications_created_at;
DROP TABLE IF EXISTS notification_deliveries;
