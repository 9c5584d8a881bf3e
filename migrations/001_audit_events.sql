-- One row per permission-gated call: each check, each effective-permissions
-- read and each provisioning write. Rows are only ever inserted.
CREATE TABLE audit_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at   timestamptz NOT NULL,
    module        text NOT NULL,
    action        text NOT NULL,
    actor_user_id text NOT NULL DEFAULT '',
    tenant_id     text NOT NULL DEFAULT '',
    resource_type text NOT NULL DEFAULT '',
    resource_id   text NOT NULL DEFAULT '',
    permission    text NOT NULL DEFAULT '',
    decision      text NOT NULL CHECK (decision IN ('allowed', 'denied')),
    zed_token     text NOT NULL DEFAULT '',
    decision_id   uuid NOT NULL UNIQUE,
    client        text NOT NULL DEFAULT '',
    request_id    text NOT NULL DEFAULT '',
    details       jsonb
);

-- Keyset pagination walks (occurred_at, id) within each filter.
CREATE INDEX audit_events_module_time ON audit_events (module, occurred_at, id);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at, id);
CREATE INDEX audit_events_actor_time  ON audit_events (actor_user_id, occurred_at, id);
CREATE INDEX audit_events_time        ON audit_events (occurred_at, id);

---- create above / drop below ----

DROP TABLE audit_events;
