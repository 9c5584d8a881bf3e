package spicedb

import (
	"context"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// consistency follows the contract's rule: minimize_latency (cached answers
// within SpiceDB's quantization window) unless the caller hands us a zed token
// from a write, then at least as fresh as that write.
func consistency(token string) *v1.Consistency {
	if token == "" {
		return &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}
	}
	return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: token}}}
}

// atBarrier reads exactly at a barrier revision (see internal/cache): not
// older, so the answer includes every change the barrier covers, and not
// newer, so every fill between two barriers reads one revision and SpiceDB's
// dispatch cache, keyed by revision, serves them all (at least as fresh
// would move with SpiceDB's quantized revision every few seconds and start
// that cache over each time).
func atBarrier(token string) *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: token}}}
}

func subjectRef(s authz.Subject) *v1.SubjectReference {
	return &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: s.Kind, ObjectId: s.ID}}
}

func object(typ, id string) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: typ, ObjectId: id}
}

// target resolves a check to the object and permission SpiceDB evaluates:
// the tenant for a plain key, the tenant-scoped resource object otherwise.
func (g *Graph) target(c authz.Check) (*v1.ObjectReference, string, error) {
	perm := c.Key.Relation()
	if c.Resource == nil {
		if !g.model.tenant[perm] {
			return nil, "", authz.Errorf(authz.EINVALID, "unknown permission %q", c.Key)
		}
		return object(typeTenant, c.TenantID), perm, nil
	}
	perms, ok := g.model.resources[c.Resource.Type]
	if !ok {
		return nil, "", authz.UnknownResourceType(c.Resource.Type, g.model.resourceTypeNames())
	}
	if !perms[perm] {
		return nil, "", authz.Errorf(authz.EINVALID, "permission %q does not apply to resource type %q", c.Key, c.Resource.Type)
	}
	id, err := authz.ScopedID("resource.id", c.TenantID, c.Resource.ID)
	if err != nil {
		return nil, "", err
	}
	return object(c.Resource.Type, id), perm, nil
}

// Check answers one check.
func (g *Graph) Check(ctx context.Context, c authz.Check) (authz.Decision, error) {
	obj, perm, err := g.target(c)
	if err != nil {
		return authz.Decision{}, err
	}
	it := &v1.CheckBulkPermissionsRequestItem{Resource: obj, Permission: perm, Subject: subjectRef(c.Subject)}
	if c.ConsistencyToken == "" && (g.checks != nil || g.memo != nil) {
		return g.checkLatest(ctx, it)
	}
	return g.checkOne(ctx, it, c.ConsistencyToken)
}

// checkLatest answers a minimize_latency check: from the memo when SpiceDB's
// current revision already answered it, otherwise through the coalescer (or a
// call of its own when coalescing is off).
func (g *Graph) checkLatest(ctx context.Context, it *v1.CheckBulkPermissionsRequestItem) (authz.Decision, error) {
	var k memoKey
	var start time.Time
	if g.memo != nil {
		k, start = keyOf(it), time.Now()
		if allowed, rev, ok := g.memo.get(k, start); ok {
			return authz.Decision{Allowed: allowed, CheckedAt: rev}, nil
		}
	}
	var d authz.Decision
	var err error
	if g.checks != nil {
		d, err = g.checks.check(ctx, it)
	} else {
		d, err = g.checkOne(ctx, it, "")
	}
	if g.memo != nil {
		if err != nil {
			g.memo.forget(time.Now())
		} else {
			g.memo.put(k, d.Allowed, d.CheckedAt, start)
		}
	}
	return d, err
}

// checkOne sends one CheckPermission: minimize_latency without a token, at
// least as fresh as the token with one.
func (g *Graph) checkOne(ctx context.Context, it *v1.CheckBulkPermissionsRequestItem, token string) (authz.Decision, error) {
	return g.checkWith(ctx, it, consistency(token), token != "")
}

// checkWith sends one CheckPermission at the given consistency; callerToken
// says whether that consistency carries a caller's token (whose malformation
// is the caller's mistake).
func (g *Graph) checkWith(ctx context.Context, it *v1.CheckBulkPermissionsRequestItem, cons *v1.Consistency, callerToken bool) (authz.Decision, error) {
	ctx, cancel := g.call(ctx)
	defer cancel()
	resp, err := g.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: cons, Resource: it.Resource, Permission: it.Permission, Subject: it.Subject,
	})
	if err != nil {
		return authz.Decision{}, mapCheckError(err, callerToken)
	}
	return authz.Decision{
		Allowed:   resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION,
		CheckedAt: resp.GetCheckedAt().GetToken(),
		Source:    authz.SourceSpiceDB,
	}, nil
}

// CheckBulk answers several checks in one CheckBulkPermissions call, in order.
// All items share one consistency: the freshest token given wins because
// SpiceDB takes one consistency per bulk request; with none, minimize_latency.
func (g *Graph) CheckBulk(ctx context.Context, checks []authz.Check) ([]authz.Decision, error) {
	qs, token, err := g.Questions(checks)
	if err != nil {
		return nil, err
	}
	items := make([]*v1.CheckBulkPermissionsRequestItem, len(qs))
	for i, q := range qs {
		items[i] = item(q)
	}
	ctx, cancel := g.call(ctx)
	defer cancel()
	resp, err := g.perms.CheckBulkPermissions(ctx, &v1.CheckBulkPermissionsRequest{
		Consistency: consistency(token),
		Items:       items,
	})
	if err != nil {
		return nil, mapCheckError(err, token != "")
	}
	return bulkDecisions(resp, items)
}

// bulkDecisions pairs a CheckBulkPermissions answer with the items asked, in
// order. An item SpiceDB could not answer, or whose echoed question is not
// the one asked, gets its own error (Decision.Err): an answer matched to the
// wrong question would be a wrong decision.
func bulkDecisions(resp *v1.CheckBulkPermissionsResponse, items []*v1.CheckBulkPermissionsRequestItem) ([]authz.Decision, error) {
	pairs := resp.GetPairs()
	if len(pairs) != len(items) {
		return nil, authz.Errorf(authz.EINTERNAL, "spicedb answered %d of %d bulk items", len(pairs), len(items))
	}
	out := make([]authz.Decision, len(items))
	checkedAt := resp.GetCheckedAt().GetToken()
	for i, p := range pairs {
		switch {
		case !sameItem(p.GetRequest(), items[i]):
			out[i].Err = authz.Errorf(authz.EINTERNAL, "spicedb answered bulk items out of order")
		case p.GetError() != nil:
			out[i].Err = authz.Errorf(authz.EUNAVAILABLE, "spicedb could not answer this item")
		default:
			out[i].CheckedAt, out[i].Source = checkedAt, authz.SourceSpiceDB
			out[i].Allowed = p.GetItem().GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
		}
	}
	return out, nil
}

// sameItem compares the question SpiceDB echoes in a bulk pair with the one asked.
func sameItem(got, want *v1.CheckBulkPermissionsRequestItem) bool {
	return got.GetPermission() == want.GetPermission() &&
		got.GetResource().GetObjectId() == want.GetResource().GetObjectId() &&
		got.GetResource().GetObjectType() == want.GetResource().GetObjectType() &&
		got.GetSubject().GetObject().GetObjectId() == want.GetSubject().GetObject().GetObjectId() &&
		got.GetSubject().GetObject().GetObjectType() == want.GetSubject().GetObject().GetObjectType()
}

// mapCheckError recognises a malformed consistency token, the one caller
// input SpiceDB itself validates on the check path.
func mapCheckError(err error, hadToken bool) error {
	if st, ok := statusOf(err); ok && st == "InvalidArgument" && hadToken {
		return authz.Wrap(authz.EINVALID, err, "consistency_token is not a zed token this SpiceDB issued")
	}
	return mapError(err, "check")
}
