package authz

import (
	"slices"
	"strconv"
	"strings"
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

// MaxTokenTenants bounds the tenants one token may reach.
const MaxTokenTenants = 100

// Token is an API credential. The secret is never part of it.
type Token struct {
	ID     string
	Name   string
	Scopes []string
	// Tenants are the only tenants the token reaches; nil reaches every tenant.
	Tenants   []string
	CreatedAt time.Time
	RevokedAt *time.Time
}

// Has reports whether the token holds scope.
func (t Token) Has(scope string) bool { return slices.Contains(t.Scopes, scope) }

// Scoped reports whether the token is confined to a list of tenants.
func (t Token) Scoped() bool { return t.Tenants != nil }

// Reaches is the one guard of a token's tenants: nil when the token may act
// in tenantID, else a forbidden error naming both.
func (t Token) Reaches(tenantID string) error {
	if t.Tenants == nil || slices.Contains(t.Tenants, tenantID) {
		return nil
	}
	return Errorf(EFORBIDDEN, "token %q reaches %s, not %q", t.Name, quoteList(t.Tenants), truncate(tenantID))
}

// ReachesAll is the guard of a route that spans every tenant: a token
// confined to some tenants is refused.
func (t Token) ReachesAll(what string) error {
	if t.Tenants == nil {
		return nil
	}
	return Errorf(EFORBIDDEN, "token %q reaches %s, not %s", t.Name, quoteList(t.Tenants), what)
}

// Covers reports whether every scope and tenant of other is also t's: what a
// token may mint or manage. A token without tenants reaches every tenant, so
// only such a token covers one without tenants.
func (t Token) Covers(scopes, tenants []string) bool {
	for _, s := range scopes {
		if !t.Has(s) {
			return false
		}
	}
	if t.Tenants == nil {
		return true
	}
	if tenants == nil {
		return false
	}
	for _, id := range tenants {
		if !slices.Contains(t.Tenants, id) {
			return false
		}
	}
	return true
}

func quoteList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = `"` + id + `"`
	}
	return "[" + strings.Join(q, ", ") + "]"
}

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

// ValidateTenants checks a token's tenant list: nil (every tenant) or 1 to
// MaxTokenTenants valid ids without repeats. The tenants need not exist yet.
func ValidateTenants(tenants []string) error {
	if tenants == nil {
		return nil
	}
	if len(tenants) == 0 || len(tenants) > MaxTokenTenants {
		return Errorf(EINVALID, "tenants must hold 1 to %d tenant ids (leave it out to reach every tenant); got %d", MaxTokenTenants, len(tenants))
	}
	for i, id := range tenants {
		if err := ValidateID("tenants["+strconv.Itoa(i)+"]", id); err != nil {
			return err
		}
		if slices.Contains(tenants[:i], id) {
			return Errorf(EINVALID, "tenants[%d]: %q is repeated", i, id)
		}
	}
	return nil
}
