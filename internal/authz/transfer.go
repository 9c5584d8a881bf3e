package authz

// What importing a record document into the graph, and exporting it back,
// exchange with the graph adapter.

// What an import does with a record.
const (
	StatusCreated   = "created"
	StatusUpdated   = "updated"
	StatusUnchanged = "unchanged"
)

// Relationship is one relationship of the graph.
type Relationship struct {
	ResourceType, ResourceID, Relation string
	SubjectType, SubjectID, SubjectRel string
}

// String is the relationship in SpiceDB's text form, e.g.
// tenant:acme#member@user:alice.
func (r Relationship) String() string {
	s := r.ResourceType + ":" + r.ResourceID + "#" + r.Relation + "@" + r.SubjectType + ":" + r.SubjectID
	if r.SubjectRel != "" {
		s += "#" + r.SubjectRel
	}
	return s
}

// Update writes (TOUCH) or deletes one relationship.
type Update struct {
	Delete       bool
	Relationship Relationship
}

// String is "touch <relationship>" or "delete <relationship>".
func (u Update) String() string {
	if u.Delete {
		return "delete " + u.Relationship.String()
	}
	return "touch " + u.Relationship.String()
}

// Condition is what must hold when a batch lands for its writes to have
// their PUT routes' meaning: a parent exists, a value read is still the
// value (or there is still none).
type Condition struct {
	// Exists demands a matching relationship; false demands none.
	Exists                             bool
	ResourceType, ResourceID, Relation string
	// SubjectType and SubjectID narrow the match to one subject; empty: any.
	SubjectType, SubjectID string
}

// RecordPlan is what writing one record into a World takes.
type RecordPlan struct {
	Status string
	// Purge deletes what an offboarding left under the id of a tenant the
	// record creates; it lands before anything else of the import.
	Purge []Update
	// Updates are the record's own writes; empty when Status is unchanged.
	Updates    []Update
	Conditions []Condition
}

// World is the graph's provisioning state at one revision, as records.
type World interface {
	// Revision is the zed token of the revision read.
	Revision() string
	HasPartner(partnerID string) bool
	HasTenant(tenantID string) bool
	// HasRole reports whether the custom role exists.
	HasRole(tenantID, roleID string) bool
	// Plan is what writing r takes, with the semantics of its PUT route.
	Plan(r Record) RecordPlan
	// Records lists the world as records in export order, ids sorted; roles
	// carry no Name (names are kept in the audit log). Unexpressed counts the
	// relationships no record expresses, which are left out.
	Records() (records []Record, unexpressed int)
}

// ImportStatus is how far an import has come, from its audit rows.
type ImportStatus struct {
	// Batches is the number of batches the import writes (0 until the first lands).
	Batches        int  `json:"batches"`
	BatchesWritten int  `json:"batches_written"`
	Done           bool `json:"done"`
}
