package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/authz"
)

var _ auditchain.Source = (*DB)(nil)

func unavailable(err error) error {
	return authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
}

// Head is the chain head: the last sequence number given out and its hash.
func (db *DB) Head(ctx context.Context) (auditchain.Head, error) {
	var h auditchain.Head
	if err := db.Pool.QueryRow(ctx, "SELECT seq, hash FROM audit_chain_head").Scan(&h.Seq, &h.Hash); err != nil {
		return h, unavailable(err)
	}
	return h, nil
}

// Anchor is where verification starts: the latest anchor (genesis, or the
// end of the rows retention dropped).
func (db *DB) Anchor(ctx context.Context) (auditchain.Anchor, error) {
	var a auditchain.Anchor
	var signedAt *time.Time
	var keyID string
	var sig []byte
	err := db.Pool.QueryRow(ctx, `SELECT seq, hash, (SELECT max(legacy_max_id) FROM audit_chain_anchors), signed_at, key_id, signature
		FROM audit_chain_anchors ORDER BY seq DESC LIMIT 1`).Scan(&a.Seq, &a.Hash, &a.LegacyMaxID, &signedAt, &keyID, &sig)
	if err != nil {
		return a, unavailable(err)
	}
	if sig != nil && signedAt != nil {
		a.Checkpoint = &auditchain.Checkpoint{Seq: a.Seq, Hash: a.Hash, SignedAt: *signedAt, KeyID: keyID, Signature: sig}
	}
	return a, nil
}

const chainRowColumns = "id, seq, hash, occurred_at, module, action, actor_user_id, tenant_id, resource_type, " +
	"resource_id, permission, decision, zed_token, decision_id::text, client, request_id, details::text"

func scanChainRow(row pgx.CollectableRow) (auditchain.Row, error) {
	var r auditchain.Row
	var details *string
	err := row.Scan(&r.ID, &r.Seq, &r.Hash, &r.OccurredAt, &r.Module, &r.Action, &r.ActorUserID, &r.TenantID,
		&r.ResourceType, &r.ResourceID, &r.Permission, &r.Decision, &r.ZedToken, &r.DecisionID, &r.Client,
		&r.RequestID, &details)
	if details != nil {
		r.Details = []byte(*details)
	}
	return r, err
}

// Rows lists up to limit chained rows with a sequence above after, in (seq, id) order.
func (db *DB) Rows(ctx context.Context, after int64, limit int) ([]auditchain.Row, error) {
	rows, err := db.Pool.Query(ctx, "SELECT "+chainRowColumns+" FROM audit_events WHERE seq > $1 ORDER BY seq, id LIMIT $2", after, limit)
	if err != nil {
		return nil, unavailable(err)
	}
	out, err := pgx.CollectRows(rows, scanChainRow)
	if err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// Before is the chain position just before the first row at or after t; the
// head when no row is that recent.
func (db *DB) Before(ctx context.Context, t time.Time) (auditchain.Head, error) {
	var seq *int64
	if err := db.Pool.QueryRow(ctx, "SELECT min(seq) FROM audit_events WHERE occurred_at >= $1", t).Scan(&seq); err != nil {
		return auditchain.Head{}, unavailable(err)
	}
	if seq == nil {
		return db.Head(ctx)
	}
	h := auditchain.Head{Seq: *seq - 1}
	err := db.Pool.QueryRow(ctx, "SELECT hash FROM audit_events WHERE seq = $1 ORDER BY id LIMIT 1", h.Seq).Scan(&h.Hash)
	if errors.Is(err, pgx.ErrNoRows) {
		a, err := db.Anchor(ctx) // the row before is gone: the chain starts at an anchor
		return a.Head, err
	}
	if err != nil {
		return h, unavailable(err)
	}
	return h, nil
}

// Unchained finds a row without a sequence number newer than the chain's
// start (0 when there is none): authzd's writer never writes one.
func (db *DB) Unchained(ctx context.Context, legacyMaxID int64) (int64, error) {
	var id int64
	err := db.Pool.QueryRow(ctx, "SELECT id FROM audit_events WHERE seq IS NULL AND id > $1 ORDER BY id LIMIT 1", legacyMaxID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable(err)
	}
	return id, nil
}
