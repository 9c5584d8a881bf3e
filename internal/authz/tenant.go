package authz

// TenantInfo is one tenant and the partner it belongs to.
type TenantInfo struct {
	ID        string
	PartnerID string
}

// RoleInfo is one role of a tenant: a built-in role (its keys come from the
// module manifests) or a custom role (its keys are its grants).
type RoleInfo struct {
	ID      string
	Builtin bool
	Keys    []Key
	Members int
}

// Member is one subject holding roles in a tenant.
type Member struct {
	Subject Subject
	Roles   []string
}
