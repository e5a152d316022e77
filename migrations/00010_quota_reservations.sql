-- Reservations of daily quota (docs/architecture.md, "Daily quota"): far
-- from an account's limit a replica writes the calls it is about to make
-- here before making them, so the other replicas count them at once and it
-- needs no sync per few calls. reserved is what is reserved and not yet
-- made; calls stays the calls made, which learning the account's other
-- callers from quota/get relies on.

-- +goose Up
ALTER TABLE quota_counts ADD COLUMN reserved BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE quota_counts DROP COLUMN reserved;
