package schema

import "slices"

// Built-in roles. Each is a relation or permission of the same name on the tenant definition.
const (
	RoleSuperAdmin   = "super_admin"   // platform:scaigrid#super_admin, reached through tenant#platform
	RolePartnerAdmin = "partner_admin" // partner:<P>#admin, reached through tenant#partner
	RoleTenantAdmin  = "tenant_admin"
	RoleTenantUser   = "tenant_user"
	RoleTenantViewer = "tenant_viewer"
)

// BuiltinRoles returns the built-in roles, from the broadest to the narrowest.
// Generated permissions and KeySpec.Roles list roles in this order.
func BuiltinRoles() []string {
	return []string{RoleSuperAdmin, RolePartnerAdmin, RoleTenantAdmin, RoleTenantUser, RoleTenantViewer}
}

// roleRank is a role's position in BuiltinRoles, or -1 for an unknown role.
func roleRank(role string) int { return slices.Index(BuiltinRoles(), role) }
