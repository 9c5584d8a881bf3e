-- Key rotations of the checkpoint signing key (docs/audit.md, "Key rotation"):
-- the chain head both keys signed when the new key took over. A key is
-- retired once; a checkpoint it signs after its rotation is a broken chain.
-- Expand only: the release before ignores the table.
CREATE TABLE audit_key_rotations (
    seq            bigint NOT NULL,
    hash           bytea NOT NULL,
    rotated_at     timestamptz NOT NULL,
    old_key_id     text PRIMARY KEY,
    new_key_id     text NOT NULL,
    new_public_key bytea NOT NULL,
    old_signature  bytea NOT NULL,
    new_signature  bytea NOT NULL
);
CREATE INDEX audit_key_rotations_seq ON audit_key_rotations (seq);

CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_key_rotations
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_key_rotations
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

---- create above / drop below ----

DROP TABLE audit_key_rotations;
