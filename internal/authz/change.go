package authz

import (
	"context"
	"strings"
)

// RelationshipChange is one relationship update SpiceDB applied, as its
// Watch stream reports it.
type RelationshipChange struct {
	// Operation is "touch", "create" or "delete".
	Operation string
	// Relationship is the relationship in SpiceDB's text form,
	// e.g. tenant:acme#member@user:alice.
	Relationship string
	ResourceType string
	ResourceID   string
	Relation     string
	// TenantID is the tenant the relationship's object belongs to; empty for
	// platform and partner objects.
	TenantID string
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
}

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
