-- When the component token was obtained, so every replica can schedule its
-- refresh at a fraction of its lifetime (expires_at - refreshed_at) after a
-- restart. BIGINT Unix milliseconds, 0 = unknown.

-- +goose Up
ALTER TABLE components ADD COLUMN token_refreshed_at BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE components DROP COLUMN token_refreshed_at;
