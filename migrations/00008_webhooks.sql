-- Webhooks (docs/api.md, "Webhooks").
--
-- webhooks: one per tenant. secret_enc is the signing secret sealed like
-- every other secret; during a rotation prev_secret_enc keeps signing until
-- prev_until. events is a comma-separated list of patterns
-- ("authorizer.*", "message.received").
--
-- webhook_events is the durable outbox: one row per event and tenant,
-- written in the same transaction as the state change that causes it. body
-- is the exact JSON sent, so every attempt carries the same bytes and id.
--
-- webhook_deliveries: one row per attempt series of an event (a redelivery
-- adds a row). status is pending, delivered or failed. A replica sending a
-- delivery holds it with lease_owner/lease_until: another replica takes it
-- only once the lease ran out (a dead replica's delivery is sent again).

-- +goose Up
CREATE TABLE webhooks (
    tenant_id       TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    secret_enc      TEXT NOT NULL,
    prev_secret_enc TEXT NOT NULL DEFAULT '',
    prev_until      BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE webhook_events (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    appid      TEXT NOT NULL DEFAULT '',
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_events_tenant ON webhook_events (tenant_id, created_at);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_status     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until     BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_tenant ON webhook_deliveries (tenant_id, created_at);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhooks;
