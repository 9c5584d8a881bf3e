package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// Resource types authzd knows (the module manifests define them; clientcontract tests the two agree).
const (
	ResourceBunker  = "bunker"
	ResourceBinding = "binding"
)

// MaxBulkItems is how many checks authzd answers in one check_bulk request. CheckBulk
// splits longer lists.
const MaxBulkItems = 100

// Decision is authzd's answer to one check.
type Decision struct {
	Allowed bool `json:"allowed"`
	// CheckedAt is the zed token of the revision the answer was computed at.
	CheckedAt string `json:"checked_at"`
	// DecisionID names the decision's event in the audit trail.
	DecisionID string `json:"decision_id"`
	// Err is set on a CheckBulk result that authzd could not decide (Allowed is then
	// false, and there is no audit event). HasModulePermission returns such failures as
	// its error instead.
	Err *Error `json:"error,omitempty"`
}

// Resource names one resource of a tenant, such as a bunker.
type Resource struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// CheckRequest is one question: may UserID of TenantID use Permission (on Resource)?
type CheckRequest struct {
	TenantID   string    `json:"tenant_id"`
	UserID     string    `json:"user_id"`
	Permission string    `json:"permission"`
	Resource   *Resource `json:"resource,omitempty"`
	// Action says what the caller is about to do, for the audit trail (e.g. "bunker.exec").
	Action string `json:"action,omitempty"`
	// ConsistencyToken is a zed token from a write; the answer is at least as fresh as it.
	ConsistencyToken string `json:"consistency_token,omitempty"`
	// LegacyAllowed is the legacy system's answer to the same check (shadow mode): authzd
	// answers as always and records whether the two agreed (see ShadowReport).
	LegacyAllowed *bool `json:"legacy_allowed,omitempty"`
}

// CheckOption adds an optional part to a check.
type CheckOption func(*CheckRequest)

// WithResource checks the permission on one resource of the tenant instead of on the
// tenant as a whole.
func WithResource(resourceType, resourceID string) CheckOption {
	return func(r *CheckRequest) { r.Resource = &Resource{Type: resourceType, ID: resourceID} }
}

// WithAction records what the caller is about to do in the decision's audit event.
func WithAction(action string) CheckOption {
	return func(r *CheckRequest) { r.Action = action }
}

// WithConsistencyToken asks for an answer at least as fresh as the write that returned
// zedToken. Without it authzd answers from its freshest cache.
func WithConsistencyToken(zedToken string) CheckOption {
	return func(r *CheckRequest) { r.ConsistencyToken = zedToken }
}

// WithLegacyAllowed sends the legacy system's answer to the same check, for the
// shadow report. It never changes authzd's answer.
func WithLegacyAllowed(allowed bool) CheckOption {
	return func(r *CheckRequest) { r.LegacyAllowed = &allowed }
}

// HasModulePermission asks whether userID ("alice" or "sa:ci-bot") of tenantID may use
// the module-permission key (e.g. "scaibunker:execute").
//
// An error is never a yes: with any error the Decision is the zero value, Allowed=false.
func (c *Client) HasModulePermission(ctx context.Context, tenantID, userID, key string, opts ...CheckOption) (Decision, error) {
	req := CheckRequest{TenantID: tenantID, UserID: userID, Permission: key}
	for _, opt := range opts {
		opt(&req)
	}
	var d Decision
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/permissions/check", body: req, idempotent: true}, &d)
	if err != nil {
		return Decision{}, err
	}
	if d.Err != nil {
		return Decision{}, d.Err
	}
	return d, nil
}

// CheckBulk answers many checks, in order. Lists longer than MaxBulkItems are sent in
// several requests. With an error no decision is returned; an item authzd could not
// decide comes back denied, with Decision.Err saying why.
func (c *Client) CheckBulk(ctx context.Context, reqs []CheckRequest) ([]Decision, error) {
	out := make([]Decision, 0, len(reqs))
	for start := 0; start < len(reqs); start += MaxBulkItems {
		items := reqs[start:min(start+MaxBulkItems, len(reqs))]
		var resp struct {
			Results []Decision `json:"results"`
		}
		body := struct {
			Items []CheckRequest `json:"items"`
		}{items}
		err := c.do(ctx, call{method: http.MethodPost, path: "/v1/permissions/check_bulk", body: body, idempotent: true}, &resp)
		if err != nil {
			return nil, err
		}
		if len(resp.Results) != len(items) {
			return nil, errors.New("authzd client: check_bulk answered a different number of results than items")
		}
		for _, d := range resp.Results {
			if d.Err != nil {
				d.Allowed = false
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// EffectivePermissions returns every tenant-level key userID holds in tenantID, sorted.
// Of the options only WithConsistencyToken applies; the others are refused.
func (c *Client) EffectivePermissions(ctx context.Context, tenantID, userID string, opts ...CheckOption) ([]string, error) {
	var req CheckRequest
	for _, opt := range opts {
		opt(&req)
	}
	if req.Resource != nil || req.Action != "" || req.LegacyAllowed != nil {
		return nil, errors.New("authzd client: EffectivePermissions takes only WithConsistencyToken")
	}
	path, err := buildPath("/v1/tenants/{tenant_id}/users/{user_id}/permissions", tenantID, userID)
	if err != nil {
		return nil, err
	}
	var q url.Values
	if req.ConsistencyToken != "" {
		q = url.Values{"consistency_token": {req.ConsistencyToken}}
	}
	resp, err := get[struct {
		Permissions []string `json:"permissions"`
	}](ctx, c, path, q)
	return resp.Permissions, err
}

// KeyInfo describes one module-permission key.
type KeyInfo struct {
	Key         string `json:"key"`
	Module      string `json:"module"`
	Description string `json:"description"`
}

// Keys returns the catalogue of module-permission keys authzd knows.
func (c *Client) Keys(ctx context.Context) ([]KeyInfo, error) {
	resp, err := get[struct {
		Keys []KeyInfo `json:"keys"`
	}](ctx, c, "/v1/permissions/keys", nil)
	return resp.Keys, err
}
