package authz

import "time"

// Resource names one tenant resource: a bunker, a skill binding.
type Resource struct {
	Type string
	ID   string // tenant-local id
}

// Check is one permission question: may Subject use Key in TenantID,
// optionally on Resource?
type Check struct {
	TenantID string
	Subject  Subject
	Key      Key
	Resource *Resource
	// Action is what the caller is about to do, for the audit row; it defaults to the key.
	Action string
	// ConsistencyToken, when set, asks for an answer at least as fresh as that write.
	ConsistencyToken string
}

// Decision is SpiceDB's answer to a Check.
type Decision struct {
	Allowed bool
	// CheckedAt is the zed token of the revision the answer was computed at.
	CheckedAt string
	// Err is set when this item of a bulk check got no answer; Allowed is then false.
	Err error
	// Source says where the answer came from: SourceCache, SourceMirror or SourceSpiceDB.
	Source string
}

// Decision sources, recorded in audit rows.
const (
	SourceCache = "cache"
	// SourceMirror is an answer SpiceDB's engine computed on the decision
	// cache's in-process copy of SpiceDB's relationships (a cache miss).
	SourceMirror  = "mirror"
	SourceSpiceDB = "spicedb"
)

// Decision values in audit rows.
const (
	DecisionAllowed = "allowed"
	DecisionDenied  = "denied"
)

// AuditModule is the module of audit rows that record authzd's own operations
// (provisioning writes, effective-permission reads).
const AuditModule = "authzd"

// Event is one audit row. auditchain.Row repeats its fields as the chain
// hashes them (stored bytes, with Seq and Hash); see there why they stay apart.
type Event struct {
	ID           int64
	OccurredAt   time.Time
	Module       string
	Action       string
	ActorUserID  string
	TenantID     string
	ResourceType string
	ResourceID   string
	Permission   string
	Decision     string
	ZedToken     string
	DecisionID   string
	Client       string
	RequestID    string
	Details      map[string]any
}

// EventFilter selects audit rows. Zero fields do not filter.
type EventFilter struct {
	Module   string
	TenantID string
	// Tenants, when not nil, keeps only rows of these tenants (a
	// tenant-scoped token's reach).
	Tenants     []string
	ActorUserID string
	Decision    string
	Since       time.Time
	Until       time.Time
	Limit       int
	// After continues a listing after the row with this (occurred_at, id).
	After *Cursor
}

// Cursor is a keyset position in the audit log.
type Cursor struct {
	OccurredAt time.Time
	ID         int64
}
