-- Messages and events pushed to the message and event receive URL of an
-- authorized account (docs/wechat.md, "Messages and events for authorized
-- accounts"), queued durably for each tenant bound to the account before
-- WeChat is answered, so nothing received is lost whatever delivers it
-- later (the message.received webhook event).
--
-- One row per tenant and message. dedupe_key is the message's MsgId, or
-- for events the follower's openid and CreateTime: WeChat's retries of one
-- message hit the unique key and add nothing. payload is the message's
-- decrypted fields as a JSON object (snake_case). delivered_at stays NULL
-- until whatever delivers the row marks it. Times are BIGINT Unix
-- milliseconds like everywhere.

-- +goose Up
CREATE TABLE inbound_messages (
    id              TEXT PRIMARY KEY,
    component_appid TEXT NOT NULL,
    appid           TEXT NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    dedupe_key      TEXT NOT NULL,
    msg_type        TEXT NOT NULL,
    payload         TEXT NOT NULL,
    received_at     BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (component_appid, appid, tenant_id, dedupe_key)
);
CREATE INDEX inbound_messages_pending ON inbound_messages (tenant_id, delivered_at, received_at);

-- +goose Down
DROP TABLE inbound_messages;
