package http

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/scailabs/authzd/internal/authz"
)

// tenantRule says how a route confines a tenant-scoped token
// (authz.Token.Tenants) to its tenants.
type tenantRule int

const (
	// tenantNone: the route reads or writes nothing of any tenant.
	tenantNone tenantRule = iota + 1
	// tenantPath: the path's {tenant_id}; the guard runs before the handler.
	tenantPath
	// tenantBody: the handler guards each tenant its body names, as soon as
	// it has read it: the request, or only the item, is refused.
	tenantBody
	// tenantFilter: the handler narrows its answer to the token's tenants
	// (and refuses a filter naming another tenant).
	tenantFilter
	// tenantAll: the route spans every tenant or none (partners, super
	// admins, the whole audit chain): a tenant-scoped token is refused.
	tenantAll
)

// tenantRules gives every route its tenant rule; the routes test fails on a
// route without one, and a tenant-scoped token is refused on such a route.
var tenantRules = map[string]tenantRule{
	"GET /healthz":                           tenantNone,
	"GET /readyz":                            tenantNone,
	"GET /metrics":                           tenantNone,
	"GET /v1/openapi.yaml":                   tenantNone,
	"GET /.well-known/authzen-configuration": tenantNone,

	"POST /access/v1/evaluation":      tenantBody,
	"POST /access/v1/evaluations":     tenantBody,
	"POST /access/v1/search/subject":  tenantBody,
	"POST /access/v1/search/resource": tenantBody,
	"POST /access/v1/search/action":   tenantBody,

	"POST /v1/permissions/check":                              tenantBody,
	"POST /v1/permissions/check_bulk":                         tenantBody,
	"POST /v1/permissions/explain":                            tenantBody,
	"GET /v1/permissions/keys":                                tenantNone,
	"GET /v1/tenants/{tenant_id}/users/{user_id}/permissions": tenantPath,
	"GET /v1/tenants":                                         tenantFilter,
	"GET /v1/tenants/{tenant_id}/roles":                       tenantPath,
	"GET /v1/tenants/{tenant_id}/members":                     tenantPath,

	"PUT /v1/partners/{partner_id}":                                    tenantAll,
	"DELETE /v1/partners/{partner_id}":                                 tenantAll,
	"PUT /v1/partners/{partner_id}/admins/{user_id}":                   tenantAll,
	"DELETE /v1/partners/{partner_id}/admins/{user_id}":                tenantAll,
	"PUT /v1/platform/super_admins/{user_id}":                          tenantAll,
	"DELETE /v1/platform/super_admins/{user_id}":                       tenantAll,
	"PUT /v1/tenants/{tenant_id}":                                      tenantPath,
	"DELETE /v1/tenants/{tenant_id}":                                   tenantPath,
	"PUT /v1/tenants/{tenant_id}/roles/{role_id}":                      tenantPath,
	"GET /v1/tenants/{tenant_id}/roles/{role_id}":                      tenantPath,
	"DELETE /v1/tenants/{tenant_id}/roles/{role_id}":                   tenantPath,
	"PUT /v1/tenants/{tenant_id}/roles/{role_id}/members/{user_id}":    tenantPath,
	"DELETE /v1/tenants/{tenant_id}/roles/{role_id}/members/{user_id}": tenantPath,
	"PUT /v1/tenants/{tenant_id}/resources/{type}/{resource_id}":       tenantPath,
	"DELETE /v1/tenants/{tenant_id}/resources/{type}/{resource_id}":    tenantPath,

	// Bulk import and export span tenants (a document, or the world); the
	// shadow report is an operator's view across tenants.
	"POST /v1/import":       tenantAll,
	"GET /v1/import/status": tenantAll,
	"GET /v1/export":        tenantAll,
	"GET /v1/shadow/report": tenantAll,
	"POST /v1/whatif":       tenantBody,

	"GET /v1/audit/events":      tenantFilter,
	"GET /v1/audit/chain":       tenantAll,
	"GET /v1/audit/checkpoints": tenantNone,
	"GET /v1/audit/keys":        tenantNone,
	"GET /v1/audit/rotations":   tenantNone,

	"POST /v1/tokens":              tenantFilter,
	"GET /v1/tokens":               tenantFilter,
	"DELETE /v1/tokens/{token_id}": tenantFilter,
}

// guardTenant applies the route's tenant rule to an authenticated token
// before the handler runs: the path's tenant for tenantPath routes, a
// refusal for tenantAll routes and for routes without a rule. Rules the
// handler applies itself (tenantBody, tenantFilter) pass here.
func guardTenant(r *http.Request, t authz.Token) error {
	if !t.Scoped() {
		return nil
	}
	route := r.Method + " " + chi.RouteContext(r.Context()).RoutePattern()
	switch tenantRules[route] {
	case tenantNone, tenantBody, tenantFilter:
		return nil
	case tenantPath:
		id := chi.URLParam(r, "tenant_id")
		if authz.ValidateID("tenant_id", id) != nil {
			return nil // the handler answers 400 naming the bad id
		}
		return t.Reaches(id)
	case tenantAll:
		return t.ReachesAll("every tenant")
	}
	return authz.Errorf(authz.EFORBIDDEN, "route %s is not open to tenant-scoped tokens", route)
}

// reaches is the guard a handler runs on a tenant it read from the body.
func reaches(r *http.Request, tenantID string) error {
	return tokenFrom(r.Context()).Reaches(tenantID)
}
