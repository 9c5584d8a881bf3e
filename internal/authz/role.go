package authz

import "slices"

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

// PlatformID is the id of the single platform object, where super admins are recorded.
const PlatformID = "scaigrid"

// IsPlatformRole reports whether id names a built-in role held above the
// tenant (super_admin on the platform, partner_admin on the partner).
func IsPlatformRole(id string) bool { return id == RoleSuperAdmin || id == RolePartnerAdmin }

// IsBuiltinRole reports whether id names any built-in role; custom roles may not take these ids.
func IsBuiltinRole(id string) bool { return IsTenantRole(id) || IsPlatformRole(id) }

// IsTenantRole reports whether id names a built-in tenant role.
func IsTenantRole(id string) bool { return slices.Contains(TenantRoles, id) }
