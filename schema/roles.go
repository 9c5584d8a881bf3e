package schema

import (
	"slices"

	"github.com/scailabs/authzd/internal/authz"
)

// Built-in roles, named once in internal/authz. Each is a relation or
// permission of the same name on the tenant definition.
const (
	RoleSuperAdmin   = authz.RoleSuperAdmin   // platform:scaigrid#super_admin, reached through tenant#platform
	RolePartnerAdmin = authz.RolePartnerAdmin // partner:<P>#admin, reached through tenant#partner
	RoleTenantAdmin  = authz.RoleTenantAdmin
	RoleTenantUser   = authz.RoleTenantUser
	RoleTenantViewer = authz.RoleTenantViewer
)

// BuiltinRoles returns the built-in roles, from the broadest to the narrowest.
// Generated permissions and KeySpec.Roles list roles in this order.
func BuiltinRoles() []string {
	return []string{RoleSuperAdmin, RolePartnerAdmin, RoleTenantAdmin, RoleTenantUser, RoleTenantViewer}
}

// roleRank is a role's position in BuiltinRoles, or -1 for an unknown role.
func roleRank(role string) int { return slices.Index(BuiltinRoles(), role) }
