-- Custom role names live only in the audit rows of their role.put writes
-- (SpiceDB holds ids and grants). Explanations name roles by id and name; this
-- partial index finds a role's latest role.put without scanning the tenant's
-- decision rows, and costs decisions nothing but the predicate.
CREATE INDEX audit_events_role_put ON audit_events (tenant_id, resource_id, occurred_at) WHERE action = 'role.put';

---- create above / drop below ----

DROP INDEX audit_events_role_put;
