package authz

import (
	"slices"
	"time"
)

// Scopes a token can hold.
const (
	ScopeCheck     = "check"
	ScopeProvision = "provision"
	ScopeAuditRead = "audit:read"
	ScopeAdmin     = "admin"
)

// Scopes lists every scope.
var Scopes = []string{ScopeCheck, ScopeProvision, ScopeAuditRead, ScopeAdmin}

// Token is an API credential. The secret is never part of it.
type Token struct {
	ID        string
	Name      string
	Scopes    []string
	CreatedAt time.Time
	RevokedAt *time.Time
}

// Has reports whether the token holds scope.
func (t Token) Has(scope string) bool { return slices.Contains(t.Scopes, scope) }

// ValidateScopes checks that every scope is known and there is at least one.
func ValidateScopes(scopes []string) error {
	if len(scopes) == 0 {
		return Errorf(EINVALID, "scopes: at least one of %v is required", Scopes)
	}
	for _, s := range scopes {
		if !slices.Contains(Scopes, s) {
			return Errorf(EINVALID, "scopes: unknown scope %q (known: %v)", s, Scopes)
		}
	}
	return nil
}
