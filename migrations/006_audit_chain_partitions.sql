-- offline: rewrites audit_events into a partitioned table; stop every replica of the release before it, run
-- `authzd migrate`, then start this release (docs/operations.md, "Upgrades").
-- The audit log becomes a hash chain (docs/audit.md) in a table partitioned
-- by month. Rows written before this migration keep their ids and have no
-- sequence or hash: the chain starts after them (anchor 0, 32 zero bytes),
-- and audit_chain_anchors records the last of their ids.
ALTER TABLE audit_events RENAME TO audit_events_legacy;
ALTER INDEX audit_events_module_time RENAME TO audit_events_legacy_module_time;
ALTER INDEX audit_events_tenant_time RENAME TO audit_events_legacy_tenant_time;
ALTER INDEX audit_events_actor_time RENAME TO audit_events_legacy_actor_time;
ALTER INDEX audit_events_time_brin RENAME TO audit_events_legacy_time_brin;
ALTER INDEX audit_events_role_put RENAME TO audit_events_legacy_role_put;
ALTER INDEX audit_events_authzd_decision RENAME TO audit_events_legacy_authzd_decision;

-- details is json, not jsonb: json keeps the exact text authzd wrote, which is
-- what the chain hashes (jsonb would reorder keys and renormalise numbers).
CREATE TABLE audit_events (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    seq           bigint,
    hash          bytea,
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
    decision_id   uuid NOT NULL,
    client        text NOT NULL DEFAULT '',
    request_id    text NOT NULL DEFAULT '',
    details       json
) PARTITION BY RANGE (occurred_at);

CREATE INDEX audit_events_module_time ON audit_events (module, occurred_at, id);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at, id);
CREATE INDEX audit_events_actor_time  ON audit_events (actor_user_id, occurred_at, id);
CREATE INDEX audit_events_time_brin   ON audit_events USING brin (occurred_at);
CREATE INDEX audit_events_role_put    ON audit_events (tenant_id, resource_id, occurred_at) WHERE action = 'role.put';
-- As in 005: the out-of-band recorder looks up authzd's own rows by decision_id.
CREATE INDEX audit_events_authzd_decision ON audit_events (decision_id)
    WHERE module = 'authzd' AND action <> 'permissions.effective';
-- Verification and GET /v1/audit/chain walk the chain in sequence order.
CREATE INDEX audit_events_seq         ON audit_events (seq);
-- Finds a row without a sequence newer than the chain's start in one descent;
-- empty (free to maintain) unless rows predate the chain or someone inserted one.
CREATE INDEX audit_events_unchained   ON audit_events (id) WHERE seq IS NULL;

-- No DEFAULT partition: it would make every listing a Merge Append that opens
-- every partition (instead of an ordered Append that stops at the first full
-- page), and would block creating the partition of a month it holds rows of.
-- authzd creates partitions ahead, and its writer creates a missing one on
-- demand (docs/audit.md), so no insert fails for want of a partition.

-- Audit rows, checkpoints, anchors and keys are append-only.
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit tables are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- audit_events_ensure_partition creates the partition of the month holding
-- day (UTC) when it is missing, with the TRUNCATE guard (statement triggers
-- are not inherited by partitions). authzd calls it ahead of time.
CREATE FUNCTION audit_events_ensure_partition(day date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    lo   date := date_trunc('month', day)::date;
    name text := format('audit_events_p%s', to_char(lo, 'YYYYMM'));
BEGIN
    IF to_regclass(name) IS NULL THEN
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)', name,
                lo::timestamp AT TIME ZONE 'UTC', (lo + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            EXECUTE format('CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()', name);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL; -- created concurrently by another writer or replica
        END;
    END IF;
    RETURN name;
END $$;

CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- Partitions for the legacy rows' months and the next two months, then the rows, ids kept.
DO $$
DECLARE
    m date := date_trunc('month', least(now(), (SELECT min(occurred_at) FROM audit_events_legacy)) AT TIME ZONE 'UTC')::date;
BEGIN
    WHILE m <= greatest((now() AT TIME ZONE 'UTC')::date + interval '2 months',
                        (SELECT max(occurred_at) FROM audit_events_legacy) AT TIME ZONE 'UTC') LOOP
        PERFORM audit_events_ensure_partition(m);
        m := (m + interval '1 month')::date;
    END LOOP;
END $$;
INSERT INTO audit_events (id, occurred_at, module, action, actor_user_id, tenant_id, resource_type, resource_id,
        permission, decision, zed_token, decision_id, client, request_id, details)
    OVERRIDING SYSTEM VALUE
    SELECT id, occurred_at, module, action, actor_user_id, tenant_id, resource_type, resource_id,
        permission, decision, zed_token, decision_id, client, request_id, details::json
    FROM audit_events_legacy;
SELECT setval(pg_get_serial_sequence('audit_events', 'id'), coalesce((SELECT max(id) FROM audit_events_legacy), 0) + 1, false);

-- The one chain head of the deployment. Every audit batch locks this row
-- (FOR UPDATE), chains its rows after it, COPYs them and moves it, in one
-- transaction: one lock per batch serialises sequence numbers across writers
-- and replicas.
CREATE TABLE audit_chain_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq      bigint NOT NULL,
    hash     bytea NOT NULL
);
INSERT INTO audit_chain_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

-- Where verification starts: the genesis anchor (0, zero hash), and after each
-- retention drop the last sequence and hash of the dropped rows, signed like a
-- checkpoint. legacy_max_id: rows up to this id predate the chain.
CREATE TABLE audit_chain_anchors (
    seq           bigint PRIMARY KEY,
    hash          bytea NOT NULL,
    legacy_max_id bigint NOT NULL DEFAULT 0,
    dropped       text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    signed_at     timestamptz,
    key_id        text NOT NULL DEFAULT '',
    signature     bytea
);
INSERT INTO audit_chain_anchors (seq, hash, legacy_max_id)
    VALUES (0, decode(repeat('00', 32), 'hex'), coalesce((SELECT max(id) FROM audit_events_legacy), 0));

-- Signed checkpoints of the chain head, and the public keys that signed them.
CREATE TABLE audit_checkpoints (
    seq       bigint NOT NULL,
    hash      bytea NOT NULL,
    signed_at timestamptz NOT NULL,
    key_id    text NOT NULL,
    signature bytea NOT NULL,
    PRIMARY KEY (seq, key_id)
);
CREATE TABLE audit_signing_keys (
    key_id     text PRIMARY KEY,
    public_key bytea NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_chain_anchors
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_signing_keys
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_chain_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

DROP TABLE audit_events_legacy;

---- create above / drop below ----

-- Back to one unpartitioned table; the chain, checkpoints and anchors are lost.
-- The table below is written out again, as 001_audit_events.sql and 005 left it
-- (and with the up part's columns), on purpose: a migration is immutable history
-- and SQL migrations cannot share text, so each states the table it leaves.
DROP TABLE audit_signing_keys, audit_checkpoints, audit_chain_anchors, audit_chain_head;
ALTER TABLE audit_events RENAME TO audit_events_chained;
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
    decision_id   uuid NOT NULL,
    client        text NOT NULL DEFAULT '',
    request_id    text NOT NULL DEFAULT '',
    details       jsonb
);
INSERT INTO audit_events (id, occurred_at, module, action, actor_user_id, tenant_id, resource_type, resource_id,
        permission, decision, zed_token, decision_id, client, request_id, details)
    OVERRIDING SYSTEM VALUE
    SELECT id, occurred_at, module, action, actor_user_id, tenant_id, resource_type, resource_id,
        permission, decision, zed_token, decision_id, client, request_id, details::jsonb
    FROM audit_events_chained;
SELECT setval(pg_get_serial_sequence('audit_events', 'id'), coalesce((SELECT max(id) FROM audit_events), 0) + 1, false);
DROP TABLE audit_events_chained;
DROP FUNCTION audit_events_ensure_partition(date);
DROP FUNCTION audit_refuse_change();
CREATE INDEX audit_events_module_time ON audit_events (module, occurred_at, id);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at, id);
CREATE INDEX audit_events_actor_time  ON audit_events (actor_user_id, occurred_at, id);
CREATE INDEX audit_events_time_brin   ON audit_events USING brin (occurred_at);
CREATE INDEX audit_events_role_put    ON audit_events (tenant_id, resource_id, occurred_at) WHERE action = 'role.put';
CREATE INDEX audit_events_authzd_decision ON audit_events (decision_id)
    WHERE module = 'authzd' AND action <> 'permissions.effective';
