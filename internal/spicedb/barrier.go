package spicedb

import (
	"context"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// head asks for an answer at the head revision. Nothing that must include a
// write committed before the request reads at it (see fresh); the cache's
// verifier does (CheckHead), since it tolerates an answer a little older or
// newer.
func head() *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
}

// barrierObject is where barrier writes delete and resume marks write: a
// tenant whose id contains '/', which authz.ValidateID refuses, so no tenant
// authzd provisions has it (and FollowChanges leaves its changes out).
const barrierObject = "authzd/barrier"

// Barrier sends a write that changes nothing and returns its revision, which
// includes every transaction committed before the call (internal/cache
// explains why neither a Watch checkpoint nor a fully consistent read is
// that). It is a DeleteRelationships of a tenant object no caller can name.
func (g *Graph) Barrier(ctx context.Context) (string, error) {
	ctx, cancel := g.call(ctx)
	defer cancel()
	resp, err := g.perms.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: typeTenant, OptionalResourceId: barrierObject},
	})
	if err != nil {
		return "", mapError(err, "barrier write")
	}
	if resp.GetDeletedAt().GetToken() == "" {
		return "", authz.Errorf(authz.EUNAVAILABLE, "spicedb gave no revision for a barrier write")
	}
	return resp.GetDeletedAt().GetToken(), nil
}

// Mark writes a relationship on the barrier object, tagged with id in its
// transaction metadata, so that a Watch stream delivers it (a barrier, which
// changes nothing, never appears on a stream): a resumed stream has caught up
// with everything committed before the call once it has delivered the mark.
// A barrier sent first deletes the marks of earlier resumes (and the next
// barrier this one), so they do not pile up; each subject is new, so the
// mark always changes something.
func (g *Graph) Mark(ctx context.Context, id string) error {
	if _, err := g.Barrier(ctx); err != nil {
		return err
	}
	ctx, cancel := g.call(ctx)
	defer cancel()
	_, err := g.perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{
		Updates: []*v1.RelationshipUpdate{{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: typeTenant, ObjectId: barrierObject},
			Relation: authz.RoleTenantViewer,
			Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: typeUser, ObjectId: barrierObject + "/" + randomKey()[:16]}},
		}}},
		OptionalTransactionMetadata: writeMetadata(id),
	})
	if err != nil {
		return mapError(err, "resume marker write")
	}
	return nil
}

// fresh is a consistency that includes every write committed before the
// call: at least as fresh as a new barrier. Fully consistent is not that:
// measured in TestBarrierIncludesEarlierWrites, a fully consistent read sent
// after a write returned missed it in about one case in ten while other fully
// consistent reads were in flight.
func (g *Graph) fresh(ctx context.Context) (*v1.Consistency, error) {
	token, err := g.Barrier(ctx)
	if err != nil {
		return nil, err
	}
	return consistency(token), nil
}
