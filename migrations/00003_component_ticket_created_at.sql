-- When WeChat created the stored component_verify_ticket (the CreateTime
-- of the push that carried it), so that a late or replayed push of an
-- older ticket never replaces it. BIGINT Unix milliseconds. Existing rows
-- start from when their ticket was received, a few seconds after WeChat
-- created it and long before it creates the next one.

-- +goose Up
ALTER TABLE components ADD COLUMN ticket_created_at BIGINT NOT NULL DEFAULT 0;
UPDATE components SET ticket_created_at = ticket_received_at;

-- +goose Down
ALTER TABLE components DROP COLUMN ticket_created_at;
