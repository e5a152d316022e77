-- WeChat's daily quota, shared fairly (docs/api.md, "WeChat's daily quota").
--
-- quota_counts counts the gateway's own calls per account, API and Beijing
-- day (day = days since 1970-01-01 in UTC+8), across replicas: each
-- replica adds its batched counts and reads the deployment's totals back
-- (docs/architecture.md, "Daily quota"). Rows of past days are pruned by
-- the janitor.
--
-- tenant_authorizers.daily_limit is the operator's cap on one tenant's
-- calls per proxied API and Beijing day on that account (0: no cap).

-- +goose Up
CREATE TABLE quota_counts (
    component_appid TEXT NOT NULL,
    appid           TEXT NOT NULL,
    api             TEXT NOT NULL,
    day             BIGINT NOT NULL,
    tenant_id       TEXT NOT NULL,
    calls           BIGINT NOT NULL,
    PRIMARY KEY (component_appid, day, appid, api, tenant_id)
);

ALTER TABLE tenant_authorizers ADD COLUMN daily_limit BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE tenant_authorizers DROP COLUMN daily_limit;
DROP TABLE quota_counts;
