package http

import (
	"context"

	"github.com/scailabs/authzd/internal/authz"
)

// The roles the server needs of the permission graph (SpiceDB), each as small
// as the handlers that use it. authzd's SpiceDB adapter plays all of them.

// Checker answers permission checks.
type Checker interface {
	Check(ctx context.Context, c authz.Check) (authz.Decision, error)
	// CheckBulk answers each check; a failed item carries its error in Decision.Err.
	CheckBulk(ctx context.Context, checks []authz.Check) ([]authz.Decision, error)
}

// Explainer answers a check with SpiceDB's trace and the model's facts.
type Explainer interface {
	Explain(ctx context.Context, c authz.Check) (authz.Explanation, error)
}

// Searcher lists who holds a permission, and on what.
type Searcher interface {
	LookupSubjects(ctx context.Context, q authz.SubjectSearch) (authz.SearchResult, error)
	LookupResources(ctx context.Context, q authz.ResourceSearch) (authz.SearchResult, error)
}

// Provisioner writes (and reads back) the relationships of partners, tenants,
// roles, members and resources; each write returns its zed token.
type Provisioner interface {
	PutPartner(ctx context.Context, partnerID string) (string, error)
	DeletePartner(ctx context.Context, partnerID string) (string, error)
	PutTenant(ctx context.Context, tenantID, partnerID string) (string, error)
	DeleteTenant(ctx context.Context, tenantID string) (string, error)
	PutSuperAdmin(ctx context.Context, s authz.Subject) (string, error)
	DeleteSuperAdmin(ctx context.Context, s authz.Subject) (string, error)
	PutPartnerAdmin(ctx context.Context, partnerID string, s authz.Subject) (string, error)
	DeletePartnerAdmin(ctx context.Context, partnerID string, s authz.Subject) (string, error)
	PutRole(ctx context.Context, tenantID, roleID string, keys []authz.Key) (string, error)
	GetRole(ctx context.Context, tenantID, roleID string) ([]authz.Key, error)
	DeleteRole(ctx context.Context, tenantID, roleID string) (string, error)
	SetMember(ctx context.Context, tenantID, roleID string, s authz.Subject, add bool) (string, error)
	PutResource(ctx context.Context, tenantID string, r authz.Resource, owner authz.Subject) (string, error)
	DeleteResource(ctx context.Context, tenantID string, r authz.Resource) (string, error)
}

// Model is what the loaded schema knows; it does no I/O.
type Model interface {
	// ResourceTypes lists the resource types ("tenant" excluded).
	ResourceTypes() []string
	// KeysOn lists the key relations that apply to a resource type ("tenant" included).
	KeysOn(resourceType string) []string
}

// Readiness reports whether the graph answers.
type Readiness interface {
	Ready(ctx context.Context) error
}

// Graph is every role together: what authzd wires in.
type Graph interface {
	Checker
	Explainer
	Searcher
	Provisioner
	Model
	Readiness
}
