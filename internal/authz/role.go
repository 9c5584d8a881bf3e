package authz

// Built-in tenant roles. They are relations on the tenant, not role objects.
const (
	RoleSuperAdmin   = "super_admin"
	RolePartnerAdmin = "partner_admin"
	RoleTenantAdmin  = "tenant_admin"
	RoleTenantUser   = "tenant_user"
	RoleTenantViewer = "tenant_viewer"
)

// TenantRoles are the built-in roles a tenant member can hold.
var TenantRoles = []string{RoleTenantAdmin, RoleTenantUser, RoleTenantViewer}

// IsTenantRole reports whether id names a built-in tenant role.
func IsTenantRole(id string) bool {
	for _, r := range TenantRoles {
		if r == id {
			return true
		}
	}
	return false
}
