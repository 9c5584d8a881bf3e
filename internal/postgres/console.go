package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/internal/authz"
)

// CreateSession stores a console session under the hash of its cookie, and
// drops expired ones.
func (db *DB) CreateSession(ctx context.Context, idHash []byte, tokenID, actor string, csrf []byte, expires time.Time) error {
	if _, err := db.Pool.Exec(ctx, "DELETE FROM console_sessions WHERE expires_at < now()"); err != nil {
		return authz.Wrap(authz.EUNAVAILABLE, err, "the session store is unavailable")
	}
	_, err := db.Pool.Exec(ctx,
		"INSERT INTO console_sessions (id_hash, token_id, actor, csrf_secret, expires_at) VALUES ($1, $2, $3, $4, $5)",
		idHash, tokenID, actor, csrf, expires)
	if err != nil {
		return authz.Wrap(authz.EUNAVAILABLE, err, "the session store is unavailable")
	}
	return nil
}

// Session reads a live console session by the hash of its cookie
// (EUNAUTHORIZED when there is none or it expired).
func (db *DB) Session(ctx context.Context, idHash []byte) (tokenID, actor string, csrf []byte, err error) {
	err = db.Pool.QueryRow(ctx,
		"SELECT token_id, actor, csrf_secret FROM console_sessions WHERE id_hash = $1 AND expires_at > now()", idHash).
		Scan(&tokenID, &actor, &csrf)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil, authz.Errorf(authz.EUNAUTHORIZED, "no console session")
	}
	if err != nil {
		return "", "", nil, authz.Wrap(authz.EUNAVAILABLE, err, "the session store is unavailable")
	}
	return tokenID, actor, csrf, nil
}

// DeleteSession ends a console session.
func (db *DB) DeleteSession(ctx context.Context, idHash []byte) error {
	if _, err := db.Pool.Exec(ctx, "DELETE FROM console_sessions WHERE id_hash = $1", idHash); err != nil {
		return authz.Wrap(authz.EUNAVAILABLE, err, "the session store is unavailable")
	}
	return nil
}

// HoldToken runs fn while the service token's row is share-locked and not
// revoked (EUNAUTHORIZED when it is): a revocation waits for fn to finish, so
// nothing fn writes lands after the revocation answers.
func (db *DB) HoldToken(ctx context.Context, tokenID string, fn func(context.Context) error) error {
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		return authz.Wrap(authz.EUNAVAILABLE, err, "the token store is unavailable")
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var revoked *time.Time
	err = tx.QueryRow(ctx, "SELECT revoked_at FROM api_tokens WHERE id = $1 FOR SHARE", tokenID).Scan(&revoked)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && revoked != nil) {
		return authz.Errorf(authz.EUNAUTHORIZED, "the token was revoked")
	}
	if err != nil {
		return authz.Wrap(authz.EUNAVAILABLE, err, "the token store is unavailable")
	}
	if err := fn(ctx); err != nil {
		return err
	}
	_ = tx.Commit(ctx) // the lock only read; fn's effects stand either way
	return nil
}
