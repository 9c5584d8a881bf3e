package authz

import (
	"fmt"
	"regexp"
	"strings"
)

// Key is a module-permission key such as "scaibunker:create:session".
// A Key value is always valid: build one with ParseKey.
type Key struct{ s string }

var keyPattern = regexp.MustCompile(`^[a-z0-9_]+(:[a-z0-9_]+)+$`)

// maxRelationLen is SpiceDB's limit on relation and permission names.
const maxRelationLen = 64

// GrantPrefix prefixes the tenant relation that records which custom roles grant a key.
const GrantPrefix = "grant_"

// ParseKey validates s as module:segment(:segment)* with lowercase [a-z0-9_] segments
// whose SpiceDB names are valid and unambiguous.
func ParseKey(s string) (Key, error) {
	if !keyPattern.MatchString(s) {
		return Key{}, Errorf(EINVALID, "permission key %q must look like module:segment(:segment)* with lowercase [a-z0-9_] segments", s)
	}
	for _, seg := range strings.Split(s, ":") {
		// "__" is the segment separator in SpiceDB names, so it cannot appear inside a segment;
		// a leading or trailing "_" would make the encoding ambiguous as well.
		if strings.Contains(seg, "__") || strings.HasPrefix(seg, "_") || strings.HasSuffix(seg, "_") {
			return Key{}, Errorf(EINVALID, "permission key %q: segment %q may not start or end with '_' or contain '__'", s, seg)
		}
	}
	if s[0] < 'a' || s[0] > 'z' {
		return Key{}, Errorf(EINVALID, "permission key %q must start with a letter", s)
	}
	k := Key{s: s}
	if n := len(GrantPrefix + k.Relation()); n > maxRelationLen {
		return Key{}, Errorf(EINVALID, "permission key %q is too long: its SpiceDB relation would be %d characters (max %d)", s, n, maxRelationLen)
	}
	return k, nil
}

// MustParseKey is ParseKey for constants in tests and tools; it panics on error.
func MustParseKey(s string) Key {
	k, err := ParseKey(s)
	if err != nil {
		panic(err)
	}
	return k
}

// String returns the key as written, e.g. "scaibunker:create".
func (k Key) String() string { return k.s }

// Module is the key's first segment, e.g. "scaibunker".
func (k Key) Module() string {
	m, _, _ := strings.Cut(k.s, ":")
	return m
}

// Relation is the SpiceDB permission name of the key on tenants and resources:
// ':' becomes "__", so "scaibunker:create:session" is "scaibunker__create__session".
func (k Key) Relation() string { return strings.ReplaceAll(k.s, ":", "__") }

// GrantRelation is the tenant relation whose subjects are the custom roles granting the key.
func (k Key) GrantRelation() string { return GrantPrefix + k.Relation() }

// KeyFromRelation is the inverse of Key.Relation.
func KeyFromRelation(rel string) (Key, error) {
	return ParseKey(strings.ReplaceAll(rel, "__", ":"))
}

// ValidModule reports whether s is a valid module name (a key's first segment).
func ValidModule(s string) error {
	if !regexp.MustCompile(`^[a-z][a-z0-9_]*$`).MatchString(s) || strings.Contains(s, "__") || strings.HasSuffix(s, "_") {
		return Errorf(EINVALID, "module %q must be lowercase [a-z0-9_], start with a letter, and not contain '__'", s)
	}
	return nil
}

var _ fmt.Stringer = Key{}
