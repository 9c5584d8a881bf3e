package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/internal/authz"
)

// shadowExamples is how many decision ids a disagreement group lists.
const shadowExamples = 3

// ShadowReport groups the shadowed checks of q's window by tenant, key,
// legacy answer and authzd's answer. The predicate on shadow_agreed is the
// audit_events_shadow index's, which holds only shadowed checks.
func (db *DB) ShadowReport(ctx context.Context, q authz.ShadowQuery) (authz.ShadowReport, error) {
	args := []any{q.Since, q.Until}
	where := "(details->>'shadow_agreed') IS NOT NULL AND occurred_at >= $1 AND occurred_at < $2"
	if q.TenantID != "" {
		args = append(args, q.TenantID)
		where += " AND tenant_id = $3"
	}
	rows, err := db.Pool.Query(ctx, fmt.Sprintf(`
		SELECT tenant_id, permission, (details->>'legacy_allowed') = 'true', decision = 'allowed',
		       count(*), min(occurred_at), max(occurred_at),
		       (array_agg(decision_id::text ORDER BY occurred_at DESC, id DESC))[1:%d]
		FROM audit_events WHERE %s
		GROUP BY 1, 2, 3, 4`, shadowExamples, where), args...)
	if err != nil {
		return authz.ShadowReport{}, authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
	}
	groups, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (authz.ShadowGroup, error) {
		var g authz.ShadowGroup
		err := row.Scan(&g.TenantID, &g.Permission, &g.LegacyAllowed, &g.Allowed, &g.Count, &g.FirstAt, &g.LastAt, &g.Examples)
		return g, err
	})
	if err != nil {
		return authz.ShadowReport{}, authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
	}
	out := authz.ShadowReport{Disagreements: []authz.ShadowGroup{}}
	for _, g := range groups {
		out.Checks += g.Count
		if g.LegacyAllowed == g.Allowed {
			out.Agreed += g.Count
			continue
		}
		g.FirstAt, g.LastAt = g.FirstAt.UTC(), g.LastAt.UTC()
		out.Disagreements = append(out.Disagreements, g)
	}
	slices.SortFunc(out.Disagreements, func(a, b authz.ShadowGroup) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.TenantID, b.TenantID), cmp.Compare(a.Permission, b.Permission),
			cmp.Compare(fmt.Sprint(a.LegacyAllowed), fmt.Sprint(b.LegacyAllowed)))
	})
	if q.Limit > 0 && len(out.Disagreements) > q.Limit {
		out.Disagreements = out.Disagreements[:q.Limit]
	}
	return out, nil
}
