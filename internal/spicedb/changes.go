package spicedb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/tuple"
	"github.com/authzed/spicedb/pkg/zedtoken"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scailabs/authzd/internal/authz"
)

// ErrCursorUnusable means SpiceDB refused to resume a Watch stream from the
// given revision: it is older than the datastore keeps (its GC window), or it
// comes from another datastore. What changed since it cannot be replayed.
var ErrCursorUnusable = errors.New("spicedb cannot resume the watch stream from this revision")

// HeadRevision returns a zed token for SpiceDB's current head revision.
func (g *Graph) HeadRevision(ctx context.Context) (string, error) {
	cctx, cancel := g.call(ctx)
	defer cancel()
	resp, err := g.schema.ReadSchema(cctx, &v1.ReadSchemaRequest{})
	if err != nil {
		return "", mapError(err, "read head revision")
	}
	if resp.GetReadAt().GetToken() == "" {
		return "", authz.Errorf(authz.EUNAVAILABLE, "spicedb gave no revision")
	}
	return resp.GetReadAt().GetToken(), nil
}

// FollowChanges streams every relationship change SpiceDB applies after the
// revision from, one batch per revision, in order, until ctx ends or the
// stream fails. Checkpoints arrive as batches without changes, so that a
// caller can advance its cursor through quiet periods. fn's error ends the
// stream and is returned. A stream SpiceDB refuses to start from `from`
// returns ErrCursorUnusable.
//
// This stream is separate from the decision cache's, which may start afresh
// after a break (it can refill), while a caller of FollowChanges resumes
// exactly where it stopped (it must not miss a change). Changes on the barrier
// object (the decision cache's resume marks) are left out.
func (g *Graph) FollowChanges(ctx context.Context, from string, fn func(authz.ChangeBatch) error) error {
	if from == "" {
		return errors.New("follow changes: no start revision")
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := g.watch.Watch(sctx, &v1.WatchRequest{
		OptionalStartCursor: &v1.ZedToken{Token: from},
		OptionalUpdateKinds: []v1.WatchKind{
			v1.WatchKind_WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES,
			v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS,
		},
	})
	if err != nil {
		return cursorError(err)
	}
	delivered := false
	for {
		resp, err := stream.Recv()
		if err != nil {
			if !delivered {
				return cursorError(err)
			}
			return err
		}
		delivered = true
		if len(resp.GetUpdates()) == 0 && !resp.GetIsCheckpoint() {
			continue // a schema update: not a relationship change
		}
		b, err := batchOf(resp)
		if err != nil {
			return err
		}
		if len(b.Changes) == 0 && !resp.GetIsCheckpoint() {
			continue // only the decision cache's own marks (see batchOf)
		}
		if err := fn(b); err != nil {
			return err
		}
	}
}

// cursorError tells a refused start revision from other failures. SpiceDB
// answers a revision it cannot decode, or one from another datastore, with
// InvalidArgument, and one older than its GC window with OutOfRange
// ("invalid zedtoken"). A datastore with Watch disabled answers
// FailedPrecondition: that is not the cursor's fault.
func cursorError(err error) error {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.OutOfRange:
		return fmt.Errorf("%w: %v", ErrCursorUnusable, err)
	}
	return err
}

// batchOf reads one Watch response.
func batchOf(resp *v1.WatchResponse) (authz.ChangeBatch, error) {
	b := authz.ChangeBatch{Revision: resp.GetChangesThrough().GetToken()}
	decoded, err := zedtoken.Decode(resp.GetChangesThrough())
	if err != nil {
		return b, fmt.Errorf("decode watch revision: %w", err)
	}
	b.RevisionKey = decoded.GetV1().GetRevision()
	if b.RevisionKey == "" {
		b.RevisionKey = b.Revision
	}
	mds := resp.GetFullRevisionMetadata()
	if len(mds) == 0 && resp.GetOptionalTransactionMetadata() != nil {
		mds = append(mds, resp.GetOptionalTransactionMetadata())
	}
	for _, md := range mds {
		if id := md.GetFields()[writeIDField].GetStringValue(); strings.HasPrefix(id, resumeMarkPrefix) {
			continue
		} else if id != "" {
			b.WriteIDs = append(b.WriteIDs, id)
		} else {
			b.Untagged = true
		}
	}
	if len(mds) == 0 {
		b.Untagged = true
	}
	for _, u := range resp.GetUpdates() {
		r := u.GetRelationship()
		if r.GetResource().GetObjectType() == typeTenant && r.GetResource().GetObjectId() == barrierObject {
			continue // the decision cache's resume marks and the barriers that delete them: authzd's bookkeeping, no one's permissions
		}
		text, err := tuple.V1StringRelationship(r)
		if err != nil {
			return b, fmt.Errorf("format watched relationship: %w", err)
		}
		o := r.GetResource()
		b.Changes = append(b.Changes, authz.RelationshipChange{
			Operation:    operationName(u.GetOperation()),
			Relationship: text,
			ResourceType: o.GetObjectType(),
			ResourceID:   o.GetObjectId(),
			Relation:     r.GetRelation(),
			TenantID:     tenantOf(o.GetObjectType(), o.GetObjectId()),
		})
	}
	if len(b.Changes) == 0 && len(resp.GetUpdates()) > 0 {
		b.WriteIDs, b.Untagged = nil, false // nothing but marks: nothing to account for
	}
	return b, nil
}

func operationName(op v1.RelationshipUpdate_Operation) string {
	return strings.ToLower(strings.TrimPrefix(op.String(), "OPERATION_"))
}
