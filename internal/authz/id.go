package authz

import (
	"regexp"
	"strings"
)

// MaxIDLen is SpiceDB's limit on object ids.
const MaxIDLen = 1024

// idPattern is SpiceDB's object id alphabet without '/', which authzd reserves
// as the separator of tenant-scoped ids ("<tenant>/<role>").
var idPattern = regexp.MustCompile(`^[a-zA-Z0-9_|=+\-]+$`)

// ValidateID checks that s can be an object id; field names what it is for the error message.
func ValidateID(field, s string) error {
	switch {
	case s == "":
		return Errorf(EINVALID, "%s is required", field)
	case len(s) > MaxIDLen:
		return Errorf(EINVALID, "%s is %d bytes; the limit is %d", field, len(s), MaxIDLen)
	case !idPattern.MatchString(s):
		return Errorf(EINVALID, "%s %q may only contain letters, digits and _|=+- (no ':', '#', '@', '/', spaces)", field, truncate(s))
	}
	return nil
}

// TenantPrefix starts the object id of every role and resource of tenantID:
// "<tenant>/". TenantOf reads it back.
func TenantPrefix(tenantID string) string { return tenantID + "/" }

// ScopedID joins a tenant id and a tenant-local id into the object id of a role or resource.
func ScopedID(field, tenantID, localID string) (string, error) {
	id := TenantPrefix(tenantID) + localID
	if len(id) > MaxIDLen {
		return "", Errorf(EINVALID, "tenant_id and %s together are %d bytes; the limit is %d", field, len(id)-1, MaxIDLen-1)
	}
	return id, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Subject kinds, which are also the SpiceDB object types of subjects.
const (
	SubjectUser           = "user"
	SubjectServiceAccount = "service_account"
)

// ServiceAccountPrefix marks a service account in a user_id: "sa:ci-bot".
const ServiceAccountPrefix = "sa:"

// Subject is who a decision is about: a user or a service account.
type Subject struct {
	Kind string // SubjectUser or SubjectServiceAccount
	ID   string
}

// ParseSubject reads a user_id as written in the API: "alice" or "sa:ci-bot".
func ParseSubject(field, s string) (Subject, error) {
	if rest, ok := strings.CutPrefix(s, ServiceAccountPrefix); ok {
		if err := ValidateID(field, rest); err != nil {
			return Subject{}, err
		}
		return Subject{Kind: SubjectServiceAccount, ID: rest}, nil
	}
	if err := ValidateID(field, s); err != nil {
		return Subject{}, err
	}
	return Subject{Kind: SubjectUser, ID: s}, nil
}

// String returns the subject as written in the API.
func (s Subject) String() string {
	if s.Kind == SubjectServiceAccount {
		return ServiceAccountPrefix + s.ID
	}
	return s.ID
}
