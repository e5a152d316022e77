-- Third-party platforms registered at run time (docs/platforms.md). The
-- default platform comes from WXGATE_COMPONENT_* and has no row here. Its
-- appsecret, message-check Token and EncodingAESKey are sealed like every
-- other secret; every replica polls this small table to serve a platform
-- added or removed on another one.

-- +goose Up
CREATE TABLE platforms (
    appid      TEXT PRIMARY KEY,
    secret_enc TEXT NOT NULL,
    token_enc  TEXT NOT NULL,
    aes_key_enc TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- updated_at changes with every change of the settings: a replica
    -- running the platform with older ones restarts it.
    updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE platforms;
