package authz

// Snapshot says which revision a read sees.
type Snapshot struct {
	// Token is a zed token; empty lets SpiceDB pick (minimize_latency).
	Token string
	// Exact reads at exactly Token's revision (the pages after a search's first
	// one); otherwise the read is at least as fresh as Token.
	Exact bool
}

// SubjectSearch asks which subjects of one kind hold Key in TenantID, on
// Resource when it is set.
type SubjectSearch struct {
	TenantID    string
	Key         Key
	Resource    *Resource
	SubjectKind string // SubjectUser or SubjectServiceAccount
	At          Snapshot
}

// ResourceSearch asks on which resources of one type Subject holds Key. For
// ResourceTypeTenant the answers are tenant ids and TenantID is unused;
// otherwise they are the resource ids of TenantID.
type ResourceSearch struct {
	TenantID     string
	Subject      Subject
	Key          Key
	ResourceType string
	At           Snapshot
}

// ResourceTypeTenant is the resource type of a tenant-wide key in searches and
// in the AuthZEN mapping.
const ResourceTypeTenant = "tenant"

// SearchResult is the answer to a search: ids, sorted, and the revision they
// were read at (empty when nothing was found).
type SearchResult struct {
	IDs       []string
	CheckedAt string
}
