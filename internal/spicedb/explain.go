package spicedb

import (
	"context"
	"errors"
	"io"
	"sort"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	core "github.com/authzed/spicedb/pkg/proto/core/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// Explain answers a check with SpiceDB's trace of it (CheckPermission with
// with_tracing) and the relationships of authzd's model around it, read at the
// revision the check was answered at. Without a consistency token the check
// includes every write committed before the call (see fresh): an operator
// asking "why" means "why now".
//
// SpiceDB serves sub-problems it answered before at the same revision from its
// dispatch cache even when tracing; such steps are marked cached and carry no
// sub-steps, which is why the facts are read as well.
func (g *Graph) Explain(ctx context.Context, c authz.Check) (authz.Explanation, error) {
	obj, perm, err := g.target(c)
	if err != nil {
		return authz.Explanation{}, err
	}
	var cons *v1.Consistency
	if c.ConsistencyToken != "" {
		cons = consistency(c.ConsistencyToken)
	} else if cons, err = g.fresh(ctx); err != nil {
		return authz.Explanation{}, err
	}
	cctx, cancel := g.call(ctx)
	defer cancel()
	resp, err := g.perms.CheckPermission(cctx, &v1.CheckPermissionRequest{
		Consistency: cons, Resource: obj, Permission: perm, Subject: subjectRef(c.Subject), WithTracing: true,
	})
	if err != nil {
		return authz.Explanation{}, mapCheckError(err, c.ConsistencyToken != "")
	}
	x := authz.Explanation{Decision: authz.Decision{
		Allowed:   resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION,
		CheckedAt: resp.GetCheckedAt().GetToken(),
	}}
	if t := resp.GetDebugTrace().GetCheck(); t != nil {
		x.Trace = convertTrace(t)
	}
	if x.Facts, err = g.facts(ctx, c, x.Decision.CheckedAt); err != nil {
		return authz.Explanation{}, err
	}
	return x, nil
}

func convertTrace(t *v1.CheckDebugTrace) *authz.Trace {
	n := &authz.Trace{
		Object:     t.GetResource().GetObjectType() + ":" + t.GetResource().GetObjectId(),
		Permission: t.GetPermission(),
		Kind:       "permission",
		Subject:    t.GetSubject().GetObject().GetObjectType() + ":" + t.GetSubject().GetObject().GetObjectId(),
		Result:     authz.TraceNo,
		Cached:     t.GetWasCachedResult(),
	}
	if t.GetPermissionType() == v1.CheckDebugTrace_PERMISSION_TYPE_RELATION {
		n.Kind = "relation"
	}
	if rel := t.GetSubject().GetOptionalRelation(); rel != "" {
		n.Subject += "#" + rel
	}
	switch t.GetResult() {
	case v1.CheckDebugTrace_PERMISSIONSHIP_HAS_PERMISSION:
		n.Result = authz.TraceHas
	case v1.CheckDebugTrace_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		n.Result = authz.TraceConditional
	}
	for _, s := range t.GetSubProblems().GetTraces() {
		n.Steps = append(n.Steps, convertTrace(s))
	}
	return n
}

// facts reads the relationships that decide c in authzd's model at exactly
// the revision of checkedAt, so that they describe the state the decision saw.
func (g *Graph) facts(ctx context.Context, c authz.Check, checkedAt string) (authz.Facts, error) {
	var f authz.Facts
	at := &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: checkedAt}}}
	subj := &v1.SubjectFilter{SubjectType: c.Subject.Kind, OptionalSubjectId: c.Subject.ID}
	read := func(filter *v1.RelationshipFilter) ([]*v1.Relationship, error) { return g.readAt(ctx, at, filter, 0) }

	rs, err := read(&v1.RelationshipFilter{ResourceType: typePlatform, OptionalResourceId: platformID, OptionalRelation: relSuperAdmin, OptionalSubjectFilter: subj})
	if err != nil {
		return f, err
	}
	f.SuperAdmin = len(rs) > 0

	if rs, err = read(&v1.RelationshipFilter{ResourceType: typeTenant, OptionalResourceId: c.TenantID, OptionalRelation: relPartner}); err != nil {
		return f, err
	}
	if len(rs) > 0 {
		f.PartnerID = rs[0].GetSubject().GetObject().GetObjectId()
		if rs, err = read(&v1.RelationshipFilter{ResourceType: typePartner, OptionalResourceId: f.PartnerID, OptionalRelation: relAdmin, OptionalSubjectFilter: subj}); err != nil {
			return f, err
		}
		f.PartnerAdmin = len(rs) > 0
	}

	if rs, err = read(&v1.RelationshipFilter{ResourceType: typeTenant, OptionalResourceId: c.TenantID, OptionalSubjectFilter: subj}); err != nil {
		return f, err
	}
	for _, r := range rs {
		if authz.IsTenantRole(r.GetRelation()) {
			f.BuiltinRoles = append(f.BuiltinRoles, r.GetRelation())
		}
	}

	prefix := authz.TenantPrefix(c.TenantID)
	if rs, err = read(&v1.RelationshipFilter{ResourceType: typeRole, OptionalResourceIdPrefix: prefix, OptionalRelation: relMember, OptionalSubjectFilter: subj}); err != nil {
		return f, err
	}
	for _, r := range rs {
		f.CustomRoles = append(f.CustomRoles, strings.TrimPrefix(r.GetResource().GetObjectId(), prefix))
	}

	if rs, err = read(&v1.RelationshipFilter{ResourceType: typeTenant, OptionalResourceId: c.TenantID, OptionalRelation: c.Key.GrantRelation()}); err != nil {
		return f, err
	}
	for _, r := range rs {
		f.GrantingRoles = append(f.GrantingRoles, strings.TrimPrefix(r.GetSubject().GetObject().GetObjectId(), prefix))
	}

	if c.Resource != nil {
		oid, err := authz.ScopedID("resource.id", c.TenantID, c.Resource.ID)
		if err != nil {
			return f, err
		}
		if rs, err = read(&v1.RelationshipFilter{ResourceType: c.Resource.Type, OptionalResourceId: oid}); err != nil {
			return f, err
		}
		f.ResourceExists = len(rs) > 0
		for _, r := range rs {
			if r.GetRelation() == relOwner {
				o := r.GetSubject().GetObject()
				f.Owners = append(f.Owners, authz.Subject{Kind: o.GetObjectType(), ID: o.GetObjectId()})
			}
		}
		f.OwnerRule = g.model.ownerRule(c.Resource.Type, c.Key.Relation())
	}
	for _, l := range [][]string{f.BuiltinRoles, f.CustomRoles, f.GrantingRoles} {
		sort.Strings(l)
	}
	return f, nil
}

// readAt returns the relationships matching filter at the given consistency,
// at most limit of them (0: all).
func (g *Graph) readAt(ctx context.Context, at *v1.Consistency, filter *v1.RelationshipFilter, limit uint32) ([]*v1.Relationship, error) {
	ctx, cancel := g.call(ctx)
	defer cancel()
	stream, err := g.perms.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{Consistency: at, RelationshipFilter: filter, OptionalLimit: limit})
	if err != nil {
		return nil, mapError(err, "read relationships")
	}
	var out []*v1.Relationship
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, mapError(err, "read relationships")
		}
		out = append(out, r.GetRelationship())
	}
}

// ownerRule reads how the owner relation enters a resource permission in the
// schema: inside an intersection (ownership required on that path), as the
// subtracted side of an exclusion (the owner is excluded), or not at all.
func (m *model) ownerRule(resourceType, perm string) string {
	for _, def := range m.compiled.ObjectDefinitions {
		if def.GetName() != resourceType {
			continue
		}
		for _, rel := range def.GetRelation() {
			if rel.GetName() == perm {
				return ownerIn(rel.GetUsersetRewrite())
			}
		}
	}
	return ""
}

func ownerIn(rw *core.UsersetRewrite) string {
	if rw == nil {
		return ""
	}
	ops := []struct {
		set  *core.SetOperation
		rule string // what an owner child of this operation means
	}{{rw.GetUnion(), ""}, {rw.GetIntersection(), authz.OwnerRequired}, {rw.GetExclusion(), authz.OwnerExcluded}}
	for _, op := range ops {
		if op.set == nil {
			continue
		}
		for i, ch := range op.set.GetChild() {
			if cu := ch.GetComputedUserset(); cu != nil && cu.GetRelation() == relOwner {
				if op.rule == authz.OwnerExcluded && i == 0 {
					return authz.OwnerRequired // the base of an exclusion is required like an intersection operand
				}
				if op.rule != "" {
					return op.rule
				}
			}
			if r := ownerIn(ch.GetUsersetRewrite()); r != "" {
				return r
			}
		}
	}
	return ""
}
