-- Scoped service tokens. Only a SHA-256 hash of the secret is stored; the
-- token itself is shown once, when it is created.
CREATE TABLE api_tokens (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    scopes      text[] NOT NULL,
    secret_hash bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

---- create above / drop below ----

DROP TABLE api_tokens;
