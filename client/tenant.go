package client

import (
	"context"
	"net/url"
)

// Tenant is one tenant and its partner (GET /v1/tenants).
type Tenant struct {
	TenantID  string `json:"tenant_id"`
	PartnerID string `json:"partner_id"`
}

// RoleSummary is one role of a tenant (GET /v1/tenants/{tenant_id}/roles): a built-in
// role, whose keys come from the module manifests, or a custom role.
type RoleSummary struct {
	RoleID            string   `json:"role_id"`
	Name              string   `json:"name"`
	Builtin           bool     `json:"builtin"`
	ModulePermissions []string `json:"module_permissions"`
	MemberCount       int      `json:"member_count"`
}

// Member is a user or service account holding roles in a tenant.
type Member struct {
	UserID string   `json:"user_id"`
	Roles  []string `json:"roles"`
}

// pageQuery is the cursor of a list call.
func pageQuery(cursor string) url.Values {
	if cursor == "" {
		return nil
	}
	return url.Values{"cursor": {cursor}}
}

// ListTenants lists the tenants the token reaches, one page after cursor ("" for the
// first); the next cursor is "" at the end.
func (c *Client) ListTenants(ctx context.Context, cursor string) ([]Tenant, string, error) {
	resp, err := get[struct {
		Tenants    []Tenant `json:"tenants"`
		NextCursor string   `json:"next_cursor"`
	}](ctx, c, "/v1/tenants", pageQuery(cursor))
	return resp.Tenants, resp.NextCursor, err
}

// ListRoles lists a tenant's built-in and custom roles with their keys and member counts.
func (c *Client) ListRoles(ctx context.Context, tenantID string) ([]RoleSummary, error) {
	path, err := buildPath("/v1/tenants/{tenant_id}/roles", tenantID)
	if err != nil {
		return nil, err
	}
	resp, err := get[struct {
		Roles []RoleSummary `json:"roles"`
	}](ctx, c, path, nil)
	return resp.Roles, err
}

// ListMembers lists the users holding roles in a tenant, one page after cursor.
func (c *Client) ListMembers(ctx context.Context, tenantID, cursor string) ([]Member, string, error) {
	path, err := buildPath("/v1/tenants/{tenant_id}/members", tenantID)
	if err != nil {
		return nil, "", err
	}
	resp, err := get[struct {
		Members    []Member `json:"members"`
		NextCursor string   `json:"next_cursor"`
	}](ctx, c, path, pageQuery(cursor))
	return resp.Members, resp.NextCursor, err
}
