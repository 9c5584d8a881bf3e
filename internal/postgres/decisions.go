package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/internal/authz"
)

// DecisionGroups returns the distinct questions a tenant's decisions asked
// in [since, until): rows of modules other than authzd's own (checks, bulk
// items, explanations, AuthZEN evaluations; not writes or effective-permission
// reads) that name a subject and, when they name a resource type, a resource,
// grouped by subject, key and resource, with their count and latest time. It
// returns at most limit groups and the number there are (counted only when
// there are more than limit).
func (db *DB) DecisionGroups(ctx context.Context, tenantID string, since, until time.Time, limit int) ([]authz.DecisionGroup, int, error) {
	const where = `
		FROM audit_events
		WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND module <> 'authzd'
		  AND actor_user_id <> '' AND (resource_type = '' OR resource_id <> '')
		GROUP BY actor_user_id, permission, resource_type, resource_id`
	rows, err := db.Pool.Query(ctx, `SELECT actor_user_id, permission, resource_type, resource_id, count(*), max(occurred_at)`+where+`
		LIMIT $4`, tenantID, since, until, limit+1)
	if err != nil {
		return nil, 0, authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
	}
	groups, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (authz.DecisionGroup, error) {
		var g authz.DecisionGroup
		err := row.Scan(&g.ActorUserID, &g.Permission, &g.ResourceType, &g.ResourceID, &g.Count, &g.Last)
		return g, err
	})
	if err != nil {
		return nil, 0, authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
	}
	if len(groups) <= limit {
		return groups, len(groups), nil
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1`+where+`) g`, tenantID, since, until).Scan(&n); err != nil {
		return nil, 0, authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
	}
	return nil, n, nil
}
