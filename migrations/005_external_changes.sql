-- Relationship changes made straight in SpiceDB (not through authzd) are
-- recorded as audit rows by one authzd replica at a time, which follows
-- SpiceDB's Watch stream from the revision stored here. A restarted or new
-- leader resumes from it, so no change between two leaders goes unrecorded.
CREATE TABLE audit_watch_cursor (
    name       text PRIMARY KEY,
    revision   text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The recorder matches a change tagged with an authzd write id to the audit
-- row of that write (its decision_id), and skips external-change rows it has
-- already written when it replays a revision after a restart. Both look up
-- module 'authzd' rows by decision_id; decisions of other modules and
-- effective-permission reads stay out of this index.
CREATE INDEX audit_events_authzd_decision ON audit_events (decision_id)
    WHERE module = 'authzd' AND action <> 'permissions.effective';

---- create above / drop below ----

DROP INDEX audit_events_authzd_decision;
DROP TABLE audit_watch_cursor;
