package postgres

import (
	"context"

	"github.com/scailabs/authzd/internal/authz"
)

// RoleNames returns the names of custom roles of a tenant, keyed by role id,
// from the latest role.put audit row of each (the only place names are kept).
// A role without such a row is absent from the map.
func (db *DB) RoleNames(ctx context.Context, tenantID string, roleIDs []string) (map[string]string, error) {
	names := map[string]string{}
	if len(roleIDs) == 0 {
		return names, nil
	}
	rows, err := db.Pool.Query(ctx, `
		SELECT DISTINCT ON (resource_id) resource_id, coalesce(details->>'name', '')
		FROM audit_events
		WHERE action = 'role.put' AND tenant_id = $1 AND resource_id = ANY($2)
		ORDER BY resource_id, occurred_at DESC, id DESC`, tenantID, roleIDs)
	if err != nil {
		return nil, authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
	}
	defer rows.Close()
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
		}
		if name != "" {
			names[id] = name
		}
	}
	if err := rows.Err(); err != nil {
		return nil, authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
	}
	return names, nil
}
