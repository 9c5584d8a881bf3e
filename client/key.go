package client

import (
	"fmt"
	"regexp"
	"strings"
)

// keyPattern, the segment rules and maxRelationLen below copy authzd's key
// grammar (internal/authz.ParseKey). They must stay here: this module may not
// import authzd's internal packages, and ScaiGrid modules want a typo in a key
// caught when their routes are built, not on the first request. The main
// module's FuzzValidateKey (internal/authz) checks that both accept exactly the same keys.
var keyPattern = regexp.MustCompile(`^[a-z0-9_]+(:[a-z0-9_]+)+$`)

// maxRelationLen is SpiceDB's limit on the relation authzd derives from a key
// ("grant_" + the key with ':' as "__").
const maxRelationLen = 64

// ValidateKey reports whether key is a well-formed module-permission key, such
// as "scaibunker:create:session". It does not say whether authzd knows the key.
func ValidateKey(key string) error {
	if !keyPattern.MatchString(key) {
		return fmt.Errorf("permission key %q must look like module:segment(:segment)* with lowercase [a-z0-9_] segments", key)
	}
	for _, seg := range strings.Split(key, ":") {
		if strings.Contains(seg, "__") || strings.HasPrefix(seg, "_") || strings.HasSuffix(seg, "_") {
			return fmt.Errorf("permission key %q: segment %q may not start or end with '_' or contain '__'", key, seg)
		}
	}
	if key[0] < 'a' || key[0] > 'z' {
		return fmt.Errorf("permission key %q must start with a letter", key)
	}
	if n := len("grant_" + strings.ReplaceAll(key, ":", "__")); n > maxRelationLen {
		return fmt.Errorf("permission key %q is too long: its SpiceDB relation would be %d characters (max %d)", key, n, maxRelationLen)
	}
	return nil
}
