-- Tenant-scoped tokens: NULL reaches every tenant (what every token did
-- before), else only the listed tenants.
ALTER TABLE api_tokens ADD COLUMN tenants text[];

-- Console sign-ins. The cookie is random and only its SHA-256 is kept; the
-- API token it was signed in with is never stored, only its id, which every
-- request re-reads, so revoking the token ends its sessions.
CREATE TABLE console_sessions (
    id_hash     bytea PRIMARY KEY,
    token_id    text NOT NULL,
    actor       text NOT NULL DEFAULT '',
    csrf_secret bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

---- create above / drop below ----

DROP TABLE console_sessions;
ALTER TABLE api_tokens DROP COLUMN tenants;
