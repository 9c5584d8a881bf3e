package postgres

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scailabs/authzd/internal/authz"
)

// WatchCursor returns the revision the named Watch follower last stored, or
// "" when it never stored one.
func (db *DB) WatchCursor(ctx context.Context, name string) (string, error) {
	var rev string
	err := db.Pool.QueryRow(ctx, "SELECT revision FROM audit_watch_cursor WHERE name = $1", name).Scan(&rev)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", authz.Wrap(authz.EUNAVAILABLE, err, "read the watch cursor")
	}
	return rev, nil
}

// SaveWatchCursor stores the revision the named Watch follower has recorded
// everything through.
func (db *DB) SaveWatchCursor(ctx context.Context, name, revision string) error {
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_watch_cursor (name, revision) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET revision = EXCLUDED.revision, updated_at = now()`, name, revision)
	if err != nil {
		return authz.Wrap(authz.EUNAVAILABLE, err, "store the watch cursor")
	}
	return nil
}

// AuthzdDecisions returns which of ids name an audit row of authzd's own
// module (a provisioning write, a token change, an external-change row).
// An id that is not a UUID names no row.
func (db *DB) AuthzdDecisions(ctx context.Context, ids []string) (map[string]bool, error) {
	valid := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		if u, err := uuid.Parse(id); err == nil {
			valid = append(valid, u)
		}
	}
	found := make(map[string]bool, len(valid))
	if len(valid) == 0 {
		return found, nil
	}
	// The predicate repeats the partial index's (migrations 005 and 006) so the index serves it.
	rows, err := db.Pool.Query(ctx, `SELECT decision_id::text FROM audit_events
		WHERE module = 'authzd' AND action <> 'permissions.effective' AND decision_id = ANY($1)`, valid)
	if err != nil {
		return nil, authz.Wrap(authz.EUNAVAILABLE, err, "look up audit rows")
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, authz.Wrap(authz.EUNAVAILABLE, err, "look up audit rows")
	}
	for _, id := range got {
		found[id] = true
	}
	return found, nil
}

// Lease is a session-level advisory lock held on one dedicated connection:
// the lock lives exactly as long as that Postgres session, so a replica that
// dies or loses its connection gives it up.
type Lease struct {
	conn *pgxpool.Conn
	key  int64
}

// TryLease takes the advisory lock key if no other session holds it. It
// returns nil (and no error) when another session holds it.
func (db *DB) TryLease(ctx context.Context, key int64) (*Lease, error) {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, authz.Wrap(authz.EUNAVAILABLE, err, "acquire a connection for a lease")
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
		conn.Release()
		return nil, authz.Wrap(authz.EUNAVAILABLE, err, "take a lease")
	}
	if !ok {
		conn.Release()
		return nil, nil
	}
	return &Lease{conn: conn, key: key}, nil
}

// Held reports whether the lease's session is still alive (and so still
// holds the lock).
func (l *Lease) Held(ctx context.Context) error {
	if _, err := l.conn.Exec(ctx, "SELECT 1"); err != nil {
		return authz.Wrap(authz.EUNAVAILABLE, err, "the lease's session is gone")
	}
	return nil
}

// Release gives the lock up. A connection that cannot unlock is closed
// rather than returned to the pool, which ends its session and the lock.
func (l *Lease) Release(ctx context.Context) {
	if _, err := l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", l.key); err != nil {
		_ = l.conn.Hijack().Close(ctx)
		return
	}
	l.conn.Release()
}
