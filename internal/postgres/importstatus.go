package postgres

import (
	"context"

	"github.com/scailabs/authzd/internal/authz"
)

// ImportStatus reads an import's progress from its import.batch rows and its
// final row, all of which carry the import's id as their request_id. The
// predicate is the audit_events_import index's.
func (db *DB) ImportStatus(ctx context.Context, importID string) (authz.ImportStatus, error) {
	var st authz.ImportStatus
	err := db.Pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE action = 'import.batch'),
		       coalesce(max((details->>'batches')::int), 0),
		       coalesce(bool_or(action <> 'import.batch'), false)
		FROM audit_events
		WHERE request_id = $1 AND action IN ('import.batch', 'import', 'import.dry_run')`, importID).
		Scan(&st.BatchesWritten, &st.Batches, &st.Done)
	if err != nil {
		return authz.ImportStatus{}, authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
	}
	return st, nil
}
