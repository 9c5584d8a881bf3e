package authz

// Trace is one step of SpiceDB's evaluation of a check (CheckPermission with
// with_tracing): the question it answered and the steps it took to answer it.
type Trace struct {
	Object     string   `json:"object"`     // "bunker:t1/b1"
	Permission string   `json:"permission"` // SpiceDB name: "scaibunker__execute", "owner"
	Kind       string   `json:"kind"`       // "permission" (computed) or "relation" (stored)
	Subject    string   `json:"subject"`    // "user:alice", "role:t1/ops#member"
	Result     string   `json:"result"`     // TraceHas, TraceNo or TraceConditional
	Cached     bool     `json:"cached,omitempty"`
	Steps      []*Trace `json:"steps,omitempty"`
}

// Trace results.
const (
	TraceHas         = "has_permission"
	TraceNo          = "no_permission"
	TraceConditional = "conditional"
)

// Explanation is a decision together with what explains it: SpiceDB's trace
// and the relationships around the check, read at the same revision.
type Explanation struct {
	Decision Decision
	Trace    *Trace
	Facts    Facts
}

// Facts are the relationships that decide a check in authzd's model, read at
// the revision the check was answered at.
type Facts struct {
	SuperAdmin   bool
	PartnerID    string   // the tenant's partner; empty when the tenant does not exist
	PartnerAdmin bool     // the subject is an admin of PartnerID
	BuiltinRoles []string // built-in tenant roles the subject holds in the tenant
	CustomRoles  []string // custom roles (tenant-local ids) the subject is a member of
	// GrantingRoles are the custom roles (tenant-local ids) of the tenant that grant the key.
	GrantingRoles []string
	// ResourceExists and Owners describe the checked resource, when there is one.
	ResourceExists bool
	Owners         []Subject
	// OwnerRule is how ownership enters the key's permission on the resource
	// type, read off the schema: OwnerRequired, OwnerExcluded or "" (not at all).
	OwnerRule string
}

// Owner rules of a resource permission.
const (
	OwnerRequired = "required" // ownership AND the key (on at least one path)
	OwnerExcluded = "excluded" // the key, BUT NOT the owner
)
