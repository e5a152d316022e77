-- wxgate schema. One file set for PostgreSQL and SQLite: only portable types
-- (TEXT, BIGINT, INTEGER, DOUBLE PRECISION). Times are BIGINT Unix
-- milliseconds (UTC), which compare and index identically on both stores.
-- Every secret column holds an AES-256-GCM ciphertext ("wxg1.<kid>.<b64>").

-- +goose Up

-- Component (third-party platform) state, keyed by component appid.
CREATE TABLE components (
    appid              TEXT PRIMARY KEY,
    ticket_enc         TEXT NOT NULL DEFAULT '',
    ticket_received_at BIGINT NOT NULL DEFAULT 0,
    token_enc          TEXT NOT NULL DEFAULT '',
    token_expires_at   BIGINT NOT NULL DEFAULT 0,
    version            BIGINT NOT NULL DEFAULT 1,
    updated_at         BIGINT NOT NULL
);

-- Authorized Official Accounts. version is bumped on every change and used
-- for compare-and-swap; rev is a deployment-wide change sequence that the
-- replicas poll to see each other's refreshes.
CREATE TABLE authorizers (
    component_appid    TEXT NOT NULL,
    appid              TEXT NOT NULL,
    status             TEXT NOT NULL,
    access_token_enc   TEXT NOT NULL DEFAULT '',
    refresh_token_enc  TEXT NOT NULL DEFAULT '',
    token_expires_at   BIGINT NOT NULL DEFAULT 0,
    token_refreshed_at BIGINT NOT NULL DEFAULT 0,
    permission_sets    TEXT NOT NULL DEFAULT '',
    nick_name          TEXT,
    authorized_at      BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    version            BIGINT NOT NULL DEFAULT 1,
    rev                BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (component_appid, appid)
);
CREATE INDEX authorizers_rev ON authorizers (component_appid, rev);

CREATE TABLE tenants (
    id              TEXT PRIMARY KEY,
    component_appid TEXT NOT NULL,
    name            TEXT NOT NULL,
    rate_limit      DOUBLE PRECISION NOT NULL DEFAULT 0,
    rate_burst      INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    UNIQUE (component_appid, name)
);

-- Tenant API keys: metadata only, never the key itself.
CREATE TABLE tenant_keys (
    kid          TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL DEFAULT '',
    appids       TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX tenant_keys_tenant ON tenant_keys (tenant_id);

CREATE TABLE tenant_authorizers (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    component_appid TEXT NOT NULL,
    appid           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, appid),
    FOREIGN KEY (component_appid, appid) REFERENCES authorizers (component_appid, appid) ON DELETE CASCADE
);
CREATE INDEX tenant_authorizers_appid ON tenant_authorizers (component_appid, appid);

-- Authorization sessions started by POST /v1/authorizations. The
-- pre_auth_code is kept only as a SHA-256 digest, enough to match an event.
CREATE TABLE authorization_sessions (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    component_appid    TEXT NOT NULL,
    pre_auth_code_hash TEXT NOT NULL,
    return_url         TEXT NOT NULL,
    auth_type          INTEGER NOT NULL DEFAULT 0,
    biz_appid          TEXT NOT NULL DEFAULT '',
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    completed_at       BIGINT,
    appid              TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX authorization_sessions_code ON authorization_sessions (pre_auth_code_hash);

-- Named leases: exclusive, expiring ownership of a job across replicas
-- (refreshing one account's token, the component token). A crashed owner's
-- lease simply runs out.
CREATE TABLE leases (
    name  TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until BIGINT NOT NULL
);

-- Monotonic counters; bumping one inside a write transaction serialises
-- writers, so the sequence is gap-free in commit order and safe to poll.
CREATE TABLE revisions (
    name TEXT PRIMARY KEY,
    rev  BIGINT NOT NULL
);
INSERT INTO revisions (name, rev) VALUES ('authorizers', 0), ('tenants', 0);

-- Digests of events already handled, so a replayed push changes nothing.
CREATE TABLE event_receipts (
    digest      TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL
);
CREATE INDEX event_receipts_received ON event_receipts (received_at);

-- Call counts per tenant, account, API, outcome and hour.
CREATE TABLE usage_counts (
    tenant_id TEXT NOT NULL,
    appid     TEXT NOT NULL,
    api       TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    hour      BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, hour, appid, api, outcome)
);

-- +goose Down
DROP TABLE usage_counts;
DROP TABLE event_receipts;
DROP TABLE revisions;
DROP TABLE leases;
DROP TABLE authorization_sessions;
DROP TABLE tenant_authorizers;
DROP TABLE tenant_keys;
DROP TABLE tenants;
DROP TABLE authorizers;
DROP TABLE components;
