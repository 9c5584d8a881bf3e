package spicedb

import (
	"context"
	"errors"
	"io"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// The adapter's side of the decision cache (internal/cache): the questions
// checks resolve to, answers at exactly a revision, and what the cache
// follows (Changes, Barrier, Mark, Schema, Relationships). The adapter does
// not know the cache; the app wires one in front of it.

// Question resolves a check to what SpiceDB evaluates (see target).
func (g *Graph) Question(c authz.Check) (authz.Question, error) {
	obj, perm, err := g.target(c)
	if err != nil {
		return authz.Question{}, err
	}
	return authz.Question{ObjectType: obj.GetObjectType(), ObjectID: obj.GetObjectId(), Permission: perm,
		SubjectType: c.Subject.Kind, SubjectID: c.Subject.ID}, nil
}

// Questions resolves the checks of a bulk check, and the consistency token
// they share: SpiceDB takes one consistency per bulk request, so every item
// that carries a token must carry the same one. An error names the item.
func (g *Graph) Questions(checks []authz.Check) ([]authz.Question, string, error) {
	qs := make([]authz.Question, len(checks))
	token := ""
	for i, c := range checks {
		q, err := g.Question(c)
		if err != nil {
			return nil, "", authz.Errorf(authz.EINVALID, "items[%d]: %s", i, authz.ErrorMessage(err))
		}
		qs[i] = q
		if c.ConsistencyToken != "" {
			if token != "" && token != c.ConsistencyToken {
				return nil, "", authz.Errorf(authz.EINVALID, "items[%d]: all items of a bulk check must carry the same consistency_token", i)
			}
			token = c.ConsistencyToken
		}
	}
	return qs, token, nil
}

func item(q authz.Question) *v1.CheckBulkPermissionsRequestItem {
	return &v1.CheckBulkPermissionsRequestItem{Resource: object(q.ObjectType, q.ObjectID), Permission: q.Permission,
		Subject: &v1.SubjectReference{Object: object(q.SubjectType, q.SubjectID), OptionalRelation: q.SubjectRelation}}
}

// CheckAt answers one question at exactly the revision at (a barrier),
// through the coalescer when it is on (sharing its calls with other checks at
// the same revision; an item SpiceDB could not answer is then the call's
// error), else in a call of its own.
func (g *Graph) CheckAt(ctx context.Context, at string, q authz.Question) (authz.Decision, error) {
	if g.checks != nil {
		return g.checks.checkAt(ctx, item(q), at)
	}
	ds, err := g.CheckBulkAt(ctx, at, []authz.Question{q})
	if err != nil {
		return authz.Decision{}, err
	}
	return ds[0], nil
}

// CheckBulkAt answers questions at exactly the revision at, in order, in one
// call; an item SpiceDB could not answer carries its error in Decision.Err.
func (g *Graph) CheckBulkAt(ctx context.Context, at string, qs []authz.Question) ([]authz.Decision, error) {
	items := make([]*v1.CheckBulkPermissionsRequestItem, len(qs))
	for i, q := range qs {
		items[i] = item(q)
	}
	cctx, cancel := g.call(ctx)
	defer cancel()
	resp, err := g.perms.CheckBulkPermissions(cctx, &v1.CheckBulkPermissionsRequest{Consistency: atBarrier(at), Items: items})
	if err != nil {
		return nil, mapError(err, "check")
	}
	return bulkDecisions(resp, items)
}

// CheckHead answers one question at SpiceDB's head revision (fully
// consistent): the decision cache's verifier compares its answers with it.
func (g *Graph) CheckHead(ctx context.Context, q authz.Question) (bool, error) {
	it := item(q)
	cctx, cancel := g.call(ctx)
	defer cancel()
	resp, err := g.perms.CheckPermission(cctx, &v1.CheckPermissionRequest{Consistency: head(),
		Resource: it.Resource, Permission: it.Permission, Subject: it.Subject})
	if err != nil {
		return false, mapError(err, "check")
	}
	return resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION, nil
}

// Schema returns the schema text SpiceDB holds.
func (g *Graph) Schema(ctx context.Context) (string, error) {
	cctx, cancel := g.call(ctx)
	defer cancel()
	resp, err := g.schema.ReadSchema(cctx, &v1.ReadSchemaRequest{})
	if err != nil {
		return "", mapError(err, "read schema")
	}
	return resp.GetSchemaText(), nil
}

// Relationships calls fn with every relationship on objects of resourceType
// (and, when subjectType is set, whose subject is of that type) at exactly
// the revision at. fn's error ends the read and is returned. The read is
// bounded by ctx only: it may be long (a copy of every relationship).
func (g *Graph) Relationships(ctx context.Context, at, resourceType, subjectType string, fn func(authz.Tuple) error) error {
	f := &v1.RelationshipFilter{ResourceType: resourceType}
	if subjectType != "" {
		f.OptionalSubjectFilter = &v1.SubjectFilter{SubjectType: subjectType}
	}
	stream, err := g.perms.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{Consistency: atBarrier(at), RelationshipFilter: f})
	if err != nil {
		return mapError(err, "read relationships")
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return mapError(err, "read relationships")
		}
		if err := fn(tupleOf(resp.GetRelationship())); err != nil {
			return err
		}
	}
}

// NotifyWrites makes the adapter tell fn of each of its writes SpiceDB took
// (the id in its transaction metadata and the zed token it answered with),
// so that the decision cache can answer checks carrying that token once its
// stream delivers the write. One hook; a later call replaces it.
func (g *Graph) NotifyWrites(fn func(id, token string)) {
	g.wrote.Store(&fn)
}

// notifyWrote calls the hook NotifyWrites set, if any.
func (g *Graph) notifyWrote(id, token string) {
	if fn := g.wrote.Load(); fn != nil && token != "" {
		(*fn)(id, token)
	}
}
