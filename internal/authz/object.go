package authz

import "strings"

// Object types of the core schema (schema/core.zed) that are not tenant
// resources. Every other type's objects belong to one tenant: their ids are
// "<tenant>/<id>" (see ScopedID).
const (
	TypeUser           = SubjectUser
	TypeServiceAccount = SubjectServiceAccount
	TypePlatform       = "platform"
	TypePartner        = "partner"
	TypeTenant         = "tenant"
	TypeRole           = "role"
)

// Relations of the core schema that authzd reads and writes by name (the
// built-in roles are in role.go, the keys' grant relations in key.go).
const (
	RelPlatform = "platform" // tenant#platform, partner#platform
	RelPartner  = "partner"  // tenant#partner
	RelAdmin    = "admin"    // partner#admin
	RelTenant   = "tenant"   // a role's or resource's tenant
	RelMember   = "member"   // role#member
	RelOwner    = "owner"    // a resource's owner
)

// TenantOf returns the tenant an object belongs to: the tenant itself, or
// the part before '/' of a tenant-scoped id. It is "" for an object outside
// every tenant (the platform, a partner, a user, a service account).
func TenantOf(objType, objID string) string {
	if objType == TypeTenant {
		return objID
	}
	if i := strings.IndexByte(objID, '/'); i > 0 {
		return objID[:i]
	}
	return ""
}

// Unscoped reports whether objects of typ belong to no tenant.
func Unscoped(typ string) bool {
	switch typ {
	case TypeUser, TypeServiceAccount, TypePlatform, TypePartner:
		return true
	}
	return false
}

// Question is what SpiceDB evaluates for a check: a permission of one object
// for one subject (a check resolves to it through the schema).
type Question struct {
	ObjectType, ObjectID, Permission        string
	SubjectType, SubjectID, SubjectRelation string
}
