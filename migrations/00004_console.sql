-- The operator console (docs/console.md).
--
-- console_sessions holds the console's signed-in sessions and the demo's
-- one-time sign-in codes, so every replica behind a load balancer knows
-- them. Only a SHA-256 digest of each token is stored: a copy of the table
-- signs nobody in. kind is 'session' or 'signin_code'; a session expires
-- at expires_at (absolute) or when seen_at is older than the idle timeout.
--
-- call_minutes counts the proxied calls and the failed ones per minute,
-- across replicas (each replica's usage flusher adds its counts), for the
-- console's "calls and errors per minute" chart. The janitor deletes rows
-- older than two days. Times are BIGINT Unix milliseconds like everywhere.

-- +goose Up
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

CREATE TABLE call_minutes (
    component_appid TEXT NOT NULL,
    minute          BIGINT NOT NULL,
    calls           BIGINT NOT NULL,
    errors          BIGINT NOT NULL,
    PRIMARY KEY (component_appid, minute)
);

-- +goose Down
DROP TABLE call_minutes;
DROP TABLE console_sessions;
