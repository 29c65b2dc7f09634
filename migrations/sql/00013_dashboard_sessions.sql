-- Dashboard sessions and sign-in attempts, kept in the database so that
-- every replica agrees.
--
-- A session used to live in its signed cookie alone: signing out deleted
-- the cookie from one browser but a copy stayed valid for 12 hours on every
-- replica. A session is now a row; its cookie names the row (signed as
-- before), signing out deletes it, and "sign out everywhere" deletes them
-- all. Sign-in attempts are counted per client address and in all, over a
-- minute, on every replica together.

-- +goose Up
CREATE TABLE IF NOT EXISTS scheduler_dashboard_sessions (
    id TEXT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    address TEXT,
    user_agent TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE scheduler_dashboard_sessions IS 'ATIS scheduler: signed-in dashboard sessions (atis-scheduler internal)';

CREATE TABLE IF NOT EXISTS scheduler_dashboard_logins (
    id BIGSERIAL PRIMARY KEY,
    address TEXT NOT NULL,
    attempted_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_scheduler_dashboard_logins_at ON scheduler_dashboard_logins (attempted_at);
COMMENT ON TABLE scheduler_dashboard_logins IS 'ATIS scheduler: recent failed dashboard sign-ins, for rate limiting (atis-scheduler internal)';

-- +goose Down
DROP TABLE IF EXISTS scheduler_dashboard_logins;
DROP TABLE IF EXISTS scheduler_dashboard_sessions;
