package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/internal/authz"
)

// tokenPrefix makes authzd tokens recognisable to secret scanners.
const tokenPrefix = "azd_"

// CreateToken stores a new scoped token and returns it with its secret, which
// is never stored and cannot be shown again. tenants nil reaches every tenant.
func (db *DB) CreateToken(ctx context.Context, name string, scopes, tenants []string) (authz.Token, string, error) {
	idb := make([]byte, 8)
	secret := make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return authz.Token{}, "", err
	}
	if _, err := rand.Read(secret); err != nil {
		return authz.Token{}, "", err
	}
	t := authz.Token{ID: hex.EncodeToString(idb), Name: name, Scopes: scopes, Tenants: tenants}
	enc := base64.RawURLEncoding.EncodeToString(secret)
	hash := sha256.Sum256([]byte(enc))
	err := db.Pool.QueryRow(ctx,
		"INSERT INTO api_tokens (id, name, scopes, tenants, secret_hash) VALUES ($1, $2, $3, $4, $5) RETURNING created_at",
		t.ID, t.Name, t.Scopes, t.Tenants, hash[:]).Scan(&t.CreatedAt)
	if err != nil {
		return authz.Token{}, "", authz.Wrap(authz.EUNAVAILABLE, err, "the token store is unavailable")
	}
	return t, tokenPrefix + t.ID + "_" + enc, nil
}

// ListTokens lists every token, revoked ones included, without secrets.
func (db *DB) ListTokens(ctx context.Context) ([]authz.Token, error) {
	rows, err := db.Pool.Query(ctx, "SELECT id, name, scopes, tenants, created_at, revoked_at FROM api_tokens ORDER BY created_at, id")
	if err != nil {
		return nil, authz.Wrap(authz.EUNAVAILABLE, err, "the token store is unavailable")
	}
	tokens, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (authz.Token, error) {
		var t authz.Token
		err := row.Scan(&t.ID, &t.Name, &t.Scopes, &t.Tenants, &t.CreatedAt, &t.RevokedAt)
		return t, err
	})
	if err != nil {
		return nil, authz.Wrap(authz.EUNAVAILABLE, err, "the token store is unavailable")
	}
	return tokens, nil
}

// Token reads a token by id, revoked or not, without its secret.
func (db *DB) Token(ctx context.Context, id string) (authz.Token, error) {
	var t authz.Token
	err := db.Pool.QueryRow(ctx, "SELECT id, name, scopes, tenants, created_at, revoked_at FROM api_tokens WHERE id = $1", id).
		Scan(&t.ID, &t.Name, &t.Scopes, &t.Tenants, &t.CreatedAt, &t.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return authz.Token{}, authz.Errorf(authz.ENOTFOUND, "token %q does not exist", id)
	}
	if err != nil {
		return authz.Token{}, authz.Wrap(authz.EUNAVAILABLE, err, "the token store is unavailable")
	}
	return t, nil
}

// RevokeToken revokes a token by id.
func (db *DB) RevokeToken(ctx context.Context, id string) error {
	tag, err := db.Pool.Exec(ctx, "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", id)
	if err != nil {
		return authz.Wrap(authz.EUNAVAILABLE, err, "the token store is unavailable")
	}
	if tag.RowsAffected() == 0 {
		return authz.Errorf(authz.ENOTFOUND, "token %q does not exist", id)
	}
	return nil
}

// Authenticate returns the live token whose secret is raw. The secret's hash
// is compared in constant time.
func (db *DB) Authenticate(ctx context.Context, raw string) (authz.Token, error) {
	rest, ok := strings.CutPrefix(raw, tokenPrefix)
	id, secret, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 || id == "" || secret == "" {
		return authz.Token{}, authz.Errorf(authz.EUNAUTHORIZED, "invalid bearer token")
	}
	var t authz.Token
	var hash []byte
	var revoked *time.Time
	err := db.Pool.QueryRow(ctx, "SELECT id, name, scopes, tenants, created_at, revoked_at, secret_hash FROM api_tokens WHERE id = $1", id).
		Scan(&t.ID, &t.Name, &t.Scopes, &t.Tenants, &t.CreatedAt, &revoked, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return authz.Token{}, authz.Errorf(authz.EUNAUTHORIZED, "invalid bearer token")
	}
	if err != nil {
		return authz.Token{}, authz.Wrap(authz.EUNAVAILABLE, err, "the token store is unavailable")
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], hash) != 1 || revoked != nil {
		return authz.Token{}, authz.Errorf(authz.EUNAUTHORIZED, "invalid bearer token")
	}
	return t, nil
}
