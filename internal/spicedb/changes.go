package spicedb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/tuple"
	"github.com/authzed/spicedb/pkg/zedtoken"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

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

// writeIDField names authzd's write id in a write's transaction metadata,
// which SpiceDB hands back on the Watch stream: it is how authzd recognises its
// own writes there exactly, without comparing opaque tokens.
const writeIDField = "authzd_write_id"

func writeMetadata(id string) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{writeIDField: structpb.NewStringValue(id)}}
}

// Changes opens a Watch stream of every change SpiceDB applies after the
// revision from: relationships (the decision cache's resume marks included),
// schema changes and checkpoints, one batch per Watch response, in order.
// next returns them until ctx ends or the stream fails. This is the decision
// cache's stream: it may start afresh after a break (it can refill), while
// FollowChanges resumes exactly where it stopped.
//
// A stream ended because ctx ended is context.Canceled, and one SpiceDB does
// not offer wraps authz.ErrNoWatch.
func (g *Graph) Changes(ctx context.Context, from string) (next func() (authz.ChangeBatch, error), err error) {
	recv, err := g.changes(ctx, from, v1.WatchKind_WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES,
		v1.WatchKind_WATCH_KIND_INCLUDE_SCHEMA_UPDATES, v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS)
	if err != nil {
		return nil, streamError(err)
	}
	return func() (authz.ChangeBatch, error) {
		b, err := recv()
		return b, streamError(err)
	}, nil
}

// streamError says why the decision cache's stream ended in terms the cache
// knows: canceled, or no Watch at all.
func streamError(err error) error {
	switch status.Code(err) {
	case codes.OK:
		return err
	case codes.Canceled:
		return fmt.Errorf("%w: %w", context.Canceled, err)
	case codes.Unimplemented, codes.FailedPrecondition:
		return fmt.Errorf("%w: %w", authz.ErrNoWatch, err)
	}
	return err
}

// changes opens a Watch stream of the given kinds from the revision from;
// every response is read by batchOf.
func (g *Graph) changes(ctx context.Context, from string, kinds ...v1.WatchKind) (func() (authz.ChangeBatch, error), error) {
	stream, err := g.watch.Watch(ctx, &v1.WatchRequest{OptionalStartCursor: &v1.ZedToken{Token: from}, OptionalUpdateKinds: kinds})
	if err != nil {
		return nil, err
	}
	return func() (authz.ChangeBatch, error) {
		resp, err := stream.Recv()
		if err != nil {
			return authz.ChangeBatch{}, err
		}
		return batchOf(resp)
	}, nil
}

// FollowChanges streams every relationship change SpiceDB applies after the
// revision from, one batch per revision, in order, until ctx ends or the
// stream fails. Checkpoints arrive as batches without changes, so that a
// caller can advance its cursor through quiet periods. fn's error ends the
// stream and is returned. A stream SpiceDB refuses to start from `from`
// returns ErrCursorUnusable.
//
// This stream is separate from the decision cache's (Changes), which may
// start afresh after a break (it can refill), while a caller of
// FollowChanges resumes exactly where it stopped (it must not miss a
// change). Changes on the barrier object (the decision cache's resume marks)
// are left out (withoutMarks).
func (g *Graph) FollowChanges(ctx context.Context, from string, fn func(authz.ChangeBatch) error) error {
	if from == "" {
		return errors.New("follow changes: no start revision")
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next, err := g.changes(sctx, from, v1.WatchKind_WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES, v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS)
	if err != nil {
		return cursorError(err)
	}
	delivered := false
	for {
		b, err := next()
		if err != nil {
			if !delivered {
				return cursorError(err)
			}
			return err
		}
		delivered = true
		if len(b.Changes) == 0 && !b.Checkpoint {
			continue // a schema update: not a relationship change
		}
		if b = withoutMarks(b); len(b.Changes) == 0 && !b.Checkpoint {
			continue // only the decision cache's own marks
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

// batchOf reads one Watch response: every change it carries, the write ids
// in its transaction metadata, and whether it is a checkpoint or a schema
// change. It is the one reader of the Watch stream, for the decision cache
// (Changes) and for the out-of-band recorder (FollowChanges, which then
// leaves out the cache's marks).
func batchOf(resp *v1.WatchResponse) (authz.ChangeBatch, error) {
	b := authz.ChangeBatch{Revision: resp.GetChangesThrough().GetToken(), Checkpoint: resp.GetIsCheckpoint(), SchemaChanged: resp.GetSchemaUpdated()}
	if b.Revision != "" {
		decoded, err := zedtoken.Decode(resp.GetChangesThrough())
		if err != nil {
			return b, fmt.Errorf("decode watch revision: %w", err)
		}
		b.RevisionKey = decoded.GetV1().GetRevision()
		if b.RevisionKey == "" {
			b.RevisionKey = b.Revision
		}
	}
	mds := resp.GetFullRevisionMetadata()
	if len(mds) == 0 && resp.GetOptionalTransactionMetadata() != nil {
		mds = append(mds, resp.GetOptionalTransactionMetadata())
	}
	for _, md := range mds {
		if id := md.GetFields()[writeIDField].GetStringValue(); id == "" {
			b.Untagged = true
		} else if !slices.Contains(b.WriteIDs, id) {
			b.WriteIDs = append(b.WriteIDs, id)
		}
	}
	if len(mds) == 0 {
		b.Untagged = true
	}
	for _, u := range resp.GetUpdates() {
		r := u.GetRelationship()
		text, err := tuple.V1StringRelationship(r)
		if err != nil {
			return b, fmt.Errorf("format watched relationship: %w", err)
		}
		b.Changes = append(b.Changes, authz.RelationshipChange{
			Operation:    operationName(u.GetOperation()),
			Relationship: text,
			Tuple:        tupleOf(r),
			TenantID:     authz.TenantOf(r.GetResource().GetObjectType(), r.GetResource().GetObjectId()),
		})
	}
	return b, nil
}

// tupleOf reads one relationship field by field.
func tupleOf(r *v1.Relationship) authz.Tuple {
	o, s := r.GetResource(), r.GetSubject()
	t := authz.Tuple{ResourceType: o.GetObjectType(), ResourceID: o.GetObjectId(), Relation: r.GetRelation(),
		SubjectType: s.GetObject().GetObjectType(), SubjectID: s.GetObject().GetObjectId(), SubjectRelation: s.GetOptionalRelation()}
	if c := r.GetOptionalCaveat(); c != nil {
		t.Caveat = c.GetCaveatName()
		if c.GetContext() != nil {
			t.CaveatContext = c.GetContext().AsMap()
		}
	}
	if e := r.GetOptionalExpiresAt(); e != nil {
		at := e.AsTime()
		t.Expires = &at
	}
	return t
}

// withoutMarks leaves out of a batch the decision cache's resume marks and
// the barriers that delete them: authzd's bookkeeping on the barrier object,
// no one's permissions. A batch of nothing but marks accounts for nothing.
func withoutMarks(b authz.ChangeBatch) authz.ChangeBatch {
	had := len(b.Changes) > 0
	b.Changes = slices.DeleteFunc(b.Changes, func(c authz.RelationshipChange) bool {
		return c.ResourceType == typeTenant && c.ResourceID == barrierObject
	})
	b.WriteIDs = slices.DeleteFunc(b.WriteIDs, func(id string) bool { return strings.HasPrefix(id, authz.ResumeMarkPrefix) })
	if len(b.WriteIDs) == 0 {
		b.WriteIDs = nil
	}
	if len(b.Changes) == 0 && had {
		b.WriteIDs, b.Untagged = nil, false
	}
	return b
}

func operationName(op v1.RelationshipUpdate_Operation) string {
	return strings.ToLower(strings.TrimPrefix(op.String(), "OPERATION_"))
}
