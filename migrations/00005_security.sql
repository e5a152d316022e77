-- Security hardening.
--
-- tenants.return_url_hosts: the hosts a tenant's authorizations may send
-- the browser back to (return_url), lowercase, separated by single spaces;
-- empty allows any host.
--
-- tenant_authorizers.status: 'bound' (the tenant sees and calls the
-- account) or 'pending' (an authorization by this tenant of an account
-- already bound to another one, waiting for the operator's approval; the
-- tenant sees nothing of it yet). Existing bindings are bound.
--
-- authorization_sessions.auth_code_hash: a SHA-256 digest of the
-- authorization code that WeChat's authorized event delivered for the
-- session's own pre_auth_code, so that the browser's callback is honoured
-- only with that code. Empty until the event arrives.

-- +goose Up
ALTER TABLE tenants ADD COLUMN return_url_hosts TEXT NOT NULL DEFAULT '';
ALTER TABLE tenant_authorizers ADD COLUMN status TEXT NOT NULL DEFAULT 'bound';
ALTER TABLE authorization_sessions ADD COLUMN auth_code_hash TEXT NOT NULL DEFAULT '';
CREATE INDEX authorization_sessions_auth_code ON authorization_sessions (auth_code_hash);

-- +goose Down
DROP INDEX authorization_sessions_auth_code;
ALTER TABLE authorization_sessions DROP COLUMN auth_code_hash;
ALTER TABLE tenant_authorizers DROP COLUMN status;
ALTER TABLE tenants DROP COLUMN return_url_hosts;
