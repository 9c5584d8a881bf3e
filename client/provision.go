package client

import (
	"context"
	"net/http"
)

// Built-in tenant roles; AddRoleMember and RemoveRoleMember take them as role ids.
const (
	RoleTenantAdmin  = "tenant_admin"
	RoleTenantUser   = "tenant_user"
	RoleTenantViewer = "tenant_viewer"
)

// Every provisioning call returns the zed token of its write. Pass it to
// WithConsistencyToken so that a check made right after sees the write.

type writeResult struct {
	ZedToken string `json:"zed_token"`
}

// write sends an idempotent PUT or DELETE to the route tmpl filled with args.
func (c *Client) write(ctx context.Context, method, tmpl string, body any, args ...string) (string, error) {
	path, err := buildPath(tmpl, args...)
	if err != nil {
		return "", err
	}
	var res writeResult
	if err := c.do(ctx, call{method: method, path: path, body: body, idempotent: true}, &res); err != nil {
		return "", err
	}
	return res.ZedToken, nil
}

// PutPartner creates a partner. Creating one that exists is not an error.
func (c *Client) PutPartner(ctx context.Context, partnerID string) (string, error) {
	return c.write(ctx, http.MethodPut, "/v1/partners/{partner_id}", struct{}{}, partnerID)
}

// DeletePartner deletes a partner. It fails with a conflict (IsConflict) while tenants
// remain under it.
func (c *Client) DeletePartner(ctx context.Context, partnerID string) (string, error) {
	return c.write(ctx, http.MethodDelete, "/v1/partners/{partner_id}", nil, partnerID)
}

// PutTenant creates a tenant under a partner, which must exist (IsNotFound otherwise).
func (c *Client) PutTenant(ctx context.Context, tenantID, partnerID string) (string, error) {
	body := struct {
		PartnerID string `json:"partner_id"`
	}{partnerID}
	return c.write(ctx, http.MethodPut, "/v1/tenants/{tenant_id}", body, tenantID)
}

// DeleteTenant offboards a tenant: every relationship of the tenant, its roles and its
// resources are deleted.
func (c *Client) DeleteTenant(ctx context.Context, tenantID string) (string, error) {
	return c.write(ctx, http.MethodDelete, "/v1/tenants/{tenant_id}", nil, tenantID)
}

// PutSuperAdmin makes userID a platform super admin.
func (c *Client) PutSuperAdmin(ctx context.Context, userID string) (string, error) {
	return c.write(ctx, http.MethodPut, "/v1/platform/super_admins/{user_id}", nil, userID)
}

// DeleteSuperAdmin removes userID from the platform super admins.
func (c *Client) DeleteSuperAdmin(ctx context.Context, userID string) (string, error) {
	return c.write(ctx, http.MethodDelete, "/v1/platform/super_admins/{user_id}", nil, userID)
}

// PutPartnerAdmin makes userID an admin of the partner, and so of all its tenants.
func (c *Client) PutPartnerAdmin(ctx context.Context, partnerID, userID string) (string, error) {
	return c.write(ctx, http.MethodPut, "/v1/partners/{partner_id}/admins/{user_id}", nil, partnerID, userID)
}

// DeletePartnerAdmin removes userID from the partner's admins.
func (c *Client) DeletePartnerAdmin(ctx context.Context, partnerID, userID string) (string, error) {
	return c.write(ctx, http.MethodDelete, "/v1/partners/{partner_id}/admins/{user_id}", nil, partnerID, userID)
}

// Role is a custom role of a tenant: a named set of module-permission keys.
type Role struct {
	TenantID string `json:"tenant_id"`
	RoleID   string `json:"role_id"`
	// Name is a human-readable name; PutRole requires one. authzd records it in the audit
	// trail but does not keep it, so GetRole leaves it empty.
	Name              string   `json:"name,omitempty"`
	ModulePermissions []string `json:"module_permissions"`
}

// PutRole creates role.RoleID in role.TenantID or replaces its keys; its members stay.
// Built-in role ids are refused (IsInvalid).
func (c *Client) PutRole(ctx context.Context, role Role) (string, error) {
	keys := role.ModulePermissions
	if keys == nil {
		keys = []string{}
	}
	body := struct {
		Name              string   `json:"name"`
		ModulePermissions []string `json:"module_permissions"`
	}{role.Name, keys}
	return c.write(ctx, http.MethodPut, "/v1/tenants/{tenant_id}/roles/{role_id}", body, role.TenantID, role.RoleID)
}

// GetRole reads a custom role (IsNotFound if there is none).
func (c *Client) GetRole(ctx context.Context, tenantID, roleID string) (Role, error) {
	path, err := buildPath("/v1/tenants/{tenant_id}/roles/{role_id}", tenantID, roleID)
	if err != nil {
		return Role{}, err
	}
	return get[Role](ctx, c, path, nil)
}

// DeleteRole deletes a custom role with its members and grants (IsNotFound if there is none).
func (c *Client) DeleteRole(ctx context.Context, tenantID, roleID string) (string, error) {
	return c.write(ctx, http.MethodDelete, "/v1/tenants/{tenant_id}/roles/{role_id}", nil, tenantID, roleID)
}

// AddRoleMember adds userID to a role of the tenant: a built-in one (RoleTenantAdmin,
// RoleTenantUser, RoleTenantViewer) or a custom one.
func (c *Client) AddRoleMember(ctx context.Context, tenantID, roleID, userID string) (string, error) {
	return c.write(ctx, http.MethodPut, "/v1/tenants/{tenant_id}/roles/{role_id}/members/{user_id}", nil, tenantID, roleID, userID)
}

// RemoveRoleMember removes userID from a role of the tenant.
func (c *Client) RemoveRoleMember(ctx context.Context, tenantID, roleID, userID string) (string, error) {
	return c.write(ctx, http.MethodDelete, "/v1/tenants/{tenant_id}/roles/{role_id}/members/{user_id}", nil, tenantID, roleID, userID)
}

// PutResource registers a resource of the tenant (ResourceBunker, ResourceBinding) and its owner.
func (c *Client) PutResource(ctx context.Context, tenantID, resourceType, resourceID, ownerID string) (string, error) {
	body := struct {
		OwnerID string `json:"owner_id"`
	}{ownerID}
	return c.write(ctx, http.MethodPut, "/v1/tenants/{tenant_id}/resources/{type}/{resource_id}", body, tenantID, resourceType, resourceID)
}

// DeleteResource deletes a resource of the tenant.
func (c *Client) DeleteResource(ctx context.Context, tenantID, resourceType, resourceID string) (string, error) {
	return c.write(ctx, http.MethodDelete, "/v1/tenants/{tenant_id}/resources/{type}/{resource_id}", nil, tenantID, resourceType, resourceID)
}
