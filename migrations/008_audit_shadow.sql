-- Shadow mode: checks sent with the legacy system's answer carry
-- shadow_agreed in their details. GET /v1/shadow/report reads only those rows;
-- this partial index holds only them, so other decisions pay nothing but the
-- predicate.
CREATE INDEX audit_events_shadow ON audit_events (occurred_at, tenant_id) WHERE (details->>'shadow_agreed') IS NOT NULL;
-- GET /v1/import/status finds an import's rows by its id, their request_id.
CREATE INDEX audit_events_import ON audit_events (request_id) WHERE action IN ('import.batch', 'import', 'import.dry_run');

---- create above / drop below ----

DROP INDEX audit_events_import;
DROP INDEX audit_events_shadow;
