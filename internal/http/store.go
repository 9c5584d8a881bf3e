package http

import (
	"context"

	"github.com/scailabs/authzd/internal/authz"
)

// The roles the server needs of Postgres besides the audit writer, each as
// small as the code that uses it. authzd's Postgres adapter plays all of them.

// TokenVerifier resolves a service token's secret to the token, on the
// authentication path of every request (behind a short cache).
type TokenVerifier interface {
	Authenticate(ctx context.Context, raw string) (authz.Token, error)
}

// TokenStore issues, lists and revokes service tokens, for the token routes.
type TokenStore interface {
	// CreateToken makes a token; tenants nil reaches every tenant.
	CreateToken(ctx context.Context, name string, scopes, tenants []string) (authz.Token, string, error)
	ListTokens(ctx context.Context) ([]authz.Token, error)
	// Token reads one token by id (ENOTFOUND when there is none).
	Token(ctx context.Context, id string) (authz.Token, error)
	RevokeToken(ctx context.Context, id string) error
}

// AuditReader pages through the audit log.
type AuditReader interface {
	ListEvents(ctx context.Context, f authz.EventFilter) ([]authz.Event, *authz.Cursor, error)
}

// RoleNamer names custom roles of a tenant by id, for explanations.
type RoleNamer interface {
	RoleNames(ctx context.Context, tenantID string, roleIDs []string) (map[string]string, error)
}

// Pinger reports whether the database answers, for readiness.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Store is every role together: what authzd wires in.
type Store interface {
	TokenVerifier
	TokenStore
	AuditReader
	RoleNamer
	Pinger
}

// storeRoles holds the roles a Server was given under one name, so handlers
// read s.store.X whichever role X belongs to. A role a test leaves nil
// panics when used, which the recoverer answers as a 500.
type storeRoles struct {
	TokenStore
	AuditReader
	RoleNamer
	Pinger
}
