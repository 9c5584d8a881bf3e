package authz

import (
	"context"
	"errors"
	"strings"
	"time"
)

// RelationshipChange is one relationship update SpiceDB applied, as its
// Watch stream reports it.
type RelationshipChange struct {
	// Operation is "touch", "create" or "delete".
	Operation string
	// Relationship is the relationship in SpiceDB's text form,
	// e.g. tenant:acme#member@user:alice.
	Relationship string
	Tuple
	// TenantID is the tenant the relationship's object belongs to; empty for
	// platform and partner objects.
	TenantID string
}

// Tuple is one relationship field by field, as SpiceDB stores it.
type Tuple struct {
	ResourceType    string
	ResourceID      string
	Relation        string
	SubjectType     string
	SubjectID       string
	SubjectRelation string // "" for a plain subject
	// Caveat names the relationship's caveat ("" for none), with its context.
	Caveat        string
	CaveatContext map[string]any
	// Expires is when the relationship expires (nil: never).
	Expires *time.Time
}

// ChangeBatch is what one SpiceDB revision changed, with who claims it.
type ChangeBatch struct {
	// Revision is the zed token the changes are through: a stream resumed
	// from it delivers what came after.
	Revision string
	// RevisionKey names the revision stably (the same on every stream that
	// delivers it), for deduplication.
	RevisionKey string
	// WriteIDs are the authzd write ids the revision's transaction metadata
	// carries (see WithWriteID); empty when nobody tagged it.
	WriteIDs []string
	// Untagged reports that some transaction of the revision carried no
	// authzd write id.
	Untagged bool
	Changes  []RelationshipChange
	// Checkpoint reports that every change up to Revision has been delivered.
	Checkpoint bool
	// SchemaChanged reports that the schema changed at this revision.
	SchemaChanged bool
}

// ResumeMarkPrefix starts the write id of the decision cache's resume marks:
// writes on an object no tenant can name that show a resumed change stream
// has caught up. They are authzd's bookkeeping, nobody's permissions.
const ResumeMarkPrefix = "authzd-resume/"

type writeIDKey struct{}

// WithWriteID names the write the graph makes under ctx: the graph tags the
// SpiceDB transaction with id, and the caller records its audit row under
// the same id (its decision_id), so that a change seen on the Watch stream
// can be matched to the audit row that accounts for it.
func WithWriteID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, writeIDKey{}, id)
}

// WriteIDFrom returns the write id WithWriteID put in ctx, or "".
func WriteIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(writeIDKey{}).(string)
	return id
}

// WriteTag is the write id one SpiceDB transaction carries: the caller's
// write id (WithWriteID), "/", and a part unique to the transaction, since
// one call may make several.
func WriteTag(owner, unique string) string { return owner + "/" + unique }

// WriteIDOwner returns the caller's write id in a WriteTag.
func WriteIDOwner(tag string) string {
	owner, _, _ := strings.Cut(tag, "/")
	return owner
}

// ErrNoWatch wraps the error of a change stream SpiceDB does not offer (on
// Postgres its Watch needs track_commit_timestamp=on).
var ErrNoWatch = errors.New("spicedb offers no watch stream")
