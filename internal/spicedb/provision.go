package spicedb

import (
	"context"
	"errors"
	"sort"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/cenkalti/backoff/v5"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/scailabs/authzd/internal/authz"
)

func rel(resType, resID, relation string, subj *v1.SubjectReference) *v1.Relationship {
	return &v1.Relationship{Resource: object(resType, resID), Relation: relation, Subject: subj}
}

func touch(r *v1.Relationship) *v1.RelationshipUpdate {
	return &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: r}
}

func del(r *v1.Relationship) *v1.RelationshipUpdate {
	return &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_DELETE, Relationship: r}
}

func platformSubject() *v1.SubjectReference {
	return &v1.SubjectReference{Object: object(typePlatform, platformID)}
}

// exists is a precondition that the object has the given relationship.
func exists(resType, resID, relation string) *v1.Precondition {
	return &v1.Precondition{
		Operation: v1.Precondition_OPERATION_MUST_MATCH,
		Filter:    &v1.RelationshipFilter{ResourceType: resType, OptionalResourceId: resID, OptionalRelation: relation},
	}
}

// absent is a precondition that the object has no relationship of the given relation.
func absent(resType, resID, relation string) *v1.Precondition {
	return &v1.Precondition{
		Operation: v1.Precondition_OPERATION_MUST_NOT_MATCH,
		Filter:    &v1.RelationshipFilter{ResourceType: resType, OptionalResourceId: resID, OptionalRelation: relation},
	}
}

// unchanged pins a value read before a write: the single relationship in
// current must still exist, or, when current is empty, the relation must still
// be empty. Together with an invariant that every writer keeps (at most one
// such relationship), this makes the write apply only to the exact state that
// was read, so two concurrent replacements can never leave two values.
func unchanged(resType, resID, relation string, current []*v1.Relationship) []*v1.Precondition {
	if len(current) == 0 {
		return []*v1.Precondition{absent(resType, resID, relation)}
	}
	pre := make([]*v1.Precondition, 0, len(current))
	for _, r := range current {
		s := r.GetSubject()
		f := &v1.SubjectFilter{SubjectType: s.GetObject().GetObjectType(), OptionalSubjectId: s.GetObject().GetObjectId()}
		if s.GetOptionalRelation() != "" {
			f.OptionalRelation = &v1.SubjectFilter_RelationFilter{Relation: s.GetOptionalRelation()}
		}
		pre = append(pre, &v1.Precondition{
			Operation: v1.Precondition_OPERATION_MUST_MATCH,
			Filter: &v1.RelationshipFilter{ResourceType: resType, OptionalResourceId: resID,
				OptionalRelation: relation, OptionalSubjectFilter: f},
		})
	}
	return pre
}

// errStale is what a conditional write returns when the state it read changed
// before it landed (SpiceDB answered FAILED_PRECONDITION).
var errStale = errors.New("provisioning state changed since it was read")

// readModifyWrite runs attempt (read the current value, then write conditioned
// on it; see unchanged) until the write lands, starting from a fresh read each
// time another writer got there first. Before each new attempt, gone reports
// whether the parent object disappeared meanwhile (its not-found error), so a
// write racing a delete answers 404 instead of retrying until the timeout.
func (g *Graph) readModifyWrite(ctx context.Context, gone func(context.Context) error, attempt func(context.Context) (string, error)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, g.wtimeout)
	defer cancel()
	wait := backoff.ExponentialBackOff{InitialInterval: 5 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 200 * time.Millisecond}
	wait.Reset()
	for {
		token, err := attempt(ctx)
		if !errors.Is(err, errStale) {
			return token, err
		}
		if err := gone(ctx); err != nil {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", authz.Wrap(authz.EUNAVAILABLE, ctx.Err(), "concurrent writes to the same object did not settle in time")
		case <-time.After(wait.NextBackOff()):
		}
	}
}

// mustExist returns notFound when the object has no relationship of relation.
func mustExist(resType, resID, relation string, notFound error) func(context.Context, Reader) error {
	return func(ctx context.Context, r Reader) error {
		rs, err := r.Read(ctx, &v1.RelationshipFilter{ResourceType: resType, OptionalResourceId: resID, OptionalRelation: relation}, 0)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return notFound
		}
		return nil
	}
}

// retryWrite runs an idempotent write (TOUCH, DELETE, DeleteRelationships)
// until it succeeds, fails for a reason other than unavailability, or the
// write timeout passes. Serialization conflicts between concurrent writers
// surface as unavailability once SpiceDB's own retries run out.
//
// id is the write's id in its transaction metadata: once SpiceDB answers, the
// hook NotifyWrites set learns the token it answered with (the decision
// cache answers checks carrying that token once its stream delivers it).
func (g *Graph) retryWrite(ctx context.Context, id string, call func(ctx context.Context) (string, error)) (string, error) {
	if g.writeMu != nil {
		g.writeMu.Lock()
		defer g.writeMu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, g.wtimeout)
	defer cancel()
	token, err := backoff.Retry(ctx, func() (string, error) {
		cctx, ccancel := g.call(ctx)
		defer ccancel()
		token, err := call(cctx)
		if err == nil {
			return token, nil
		}
		if authz.ErrorCode(err) != authz.EUNAVAILABLE || ctx.Err() != nil {
			return "", backoff.Permanent(err)
		}
		return "", err
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{
		InitialInterval: 20 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: time.Second,
	}), backoff.WithMaxElapsedTime(g.wtimeout))
	if err == nil {
		g.notifyWrote(id, token)
	}
	return token, err
}

// newWriteID names one write in its transaction metadata (see writeIDField):
// the write id the caller put in ctx (authz.WithWriteID, the decision_id of
// the write's audit row), then "/" and a part of its own, so that each
// SpiceDB transaction of one call has a distinct id.
func (g *Graph) newWriteID(ctx context.Context) (string, *structpb.Struct) {
	id := authz.WriteTag(authz.WriteIDFrom(ctx), randomKey()[:16])
	return id, writeMetadata(id)
}

// write applies updates atomically; when a precondition fails, the caller's
// notFound error is returned instead.
func (g *Graph) write(ctx context.Context, updates []*v1.RelationshipUpdate, pre []*v1.Precondition, notFound error) (string, error) {
	return g.mutate(ctx, "write relationships", notFound, func(ctx context.Context, md *structpb.Struct) (*v1.ZedToken, error) {
		resp, err := g.perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: updates, OptionalPreconditions: pre,
			OptionalTransactionMetadata: md})
		return resp.GetWrittenAt(), err
	})
}

// deleteWhere deletes every relationship matching f atomically; when a
// precondition fails, the caller's failed error is returned instead.
func (g *Graph) deleteWhere(ctx context.Context, f *v1.RelationshipFilter, pre []*v1.Precondition, failed error) (string, error) {
	return g.mutate(ctx, "delete relationships", failed, func(ctx context.Context, md *structpb.Struct) (*v1.ZedToken, error) {
		resp, err := g.perms.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{RelationshipFilter: f, OptionalPreconditions: pre,
			OptionalTransactionMetadata: md})
		return resp.GetDeletedAt(), err
	})
}

// mutate runs one SpiceDB write call under a new write id (retried, see
// retryWrite) and returns the zed token it was written at. A failed
// precondition becomes failed when the caller gives one; other errors are
// mapped as op's.
func (g *Graph) mutate(ctx context.Context, op string, failed error, call func(ctx context.Context, md *structpb.Struct) (*v1.ZedToken, error)) (string, error) {
	id, md := g.newWriteID(ctx)
	return g.retryWrite(ctx, id, func(ctx context.Context) (string, error) {
		at, err := call(ctx, md)
		if err != nil {
			if isFailedPrecondition(err) && failed != nil {
				return "", failed
			}
			return "", mapError(err, op)
		}
		return at.GetToken(), nil
	})
}

// read returns every relationship matching f, including every write
// committed before the call (so a caller reads its own writes and a
// read-modify-write sees the latest state).
func (g *Graph) read(ctx context.Context, f *v1.RelationshipFilter) ([]*v1.Relationship, error) {
	return g.readLimit(ctx, f, 0)
}

// readLimit is read of at most limit relationships (0: all).
func (g *Graph) readLimit(ctx context.Context, f *v1.RelationshipFilter, limit uint32) ([]*v1.Relationship, error) {
	at, err := g.fresh(ctx)
	if err != nil {
		return nil, err
	}
	return g.readAt(ctx, at, f, limit)
}

func partnerNotFound(id string) error {
	return authz.Errorf(authz.ENOTFOUND, "partner %q does not exist", id)
}

func tenantNotFound(id string) error {
	return authz.Errorf(authz.ENOTFOUND, "tenant %q does not exist", id)
}

// Each provisioning write below is a plan (see Write): the Graph method runs
// it against SpiceDB (run), the what-if on its copy (Apply), so that both
// follow the one rule each write has.

// PutPartner creates the partner (idempotent).
func (g *Graph) PutPartner(ctx context.Context, partnerID string) (string, error) {
	return g.run(ctx, g.Plans().PutPartner(partnerID))
}

// PutPartner creates the partner (idempotent).
func (p Plans) PutPartner(partnerID string) Write {
	return steps(Step{Updates: []*v1.RelationshipUpdate{touch(rel(typePartner, partnerID, relPlatform, platformSubject()))}})
}

// DeletePartner removes the partner and its admins; it refuses while tenants remain under it.
func (g *Graph) DeletePartner(ctx context.Context, partnerID string) (string, error) {
	return g.run(ctx, g.Plans().DeletePartner(partnerID))
}

// DeletePartner removes the partner and its admins; it refuses while tenants remain under it.
func (p Plans) DeletePartner(partnerID string) Write {
	noTenants := &v1.Precondition{
		Operation: v1.Precondition_OPERATION_MUST_NOT_MATCH,
		Filter: &v1.RelationshipFilter{ResourceType: typeTenant, OptionalRelation: relPartner,
			OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: typePartner, OptionalSubjectId: partnerID}},
	}
	return steps(Step{Delete: &v1.RelationshipFilter{ResourceType: typePartner, OptionalResourceId: partnerID},
		Pre:    []*v1.Precondition{noTenants},
		Failed: authz.Errorf(authz.ECONFLICT, "partner %q still has tenants; offboard them first", partnerID)})
}

// PutTenant creates the tenant under a partner, or moves it to another
// partner (see Plans.PutTenant).
func (g *Graph) PutTenant(ctx context.Context, tenantID, partnerID string) (string, error) {
	return g.run(ctx, g.Plans().PutTenant(tenantID, partnerID))
}

// PutTenant creates the tenant under a partner, or moves it to another
// partner. A tenant has exactly one partner, so a move replaces a value and is
// written conditioned on the partner it read (see unchanged); concurrent moves
// end with exactly one of them.
//
// Creating a tenant first removes whatever an interrupted or racing offboarding
// left under its id (custom roles, resources), so a tenant re-created under the
// same id never inherits a member, grant or owner of the old one. No write can
// add anything under a tenant id while the tenant does not exist (every such
// write requires it), so that purge cannot miss a late arrival.
func (p Plans) PutTenant(tenantID, partnerID string) Write {
	return Write{Gone: mustExist(typePartner, partnerID, relPlatform, partnerNotFound(partnerID)),
		Plan: func(ctx context.Context, r Reader) ([]Step, error) {
			current, err := r.Read(ctx, &v1.RelationshipFilter{ResourceType: typeTenant, OptionalResourceId: tenantID, OptionalRelation: relPartner}, 0)
			if err != nil {
				return nil, err
			}
			pre := append(unchanged(typeTenant, tenantID, relPartner, current), exists(typePartner, partnerID, relPlatform))
			var out []Step
			if len(current) == 0 {
				pre = append(pre, absent(typeTenant, tenantID, relPlatform))
				if out, err = p.purgeTenantObjects(ctx, r, tenantID, true); err != nil {
					return nil, err
				}
			}
			updates := []*v1.RelationshipUpdate{
				touch(rel(typeTenant, tenantID, relPlatform, platformSubject())),
				touch(rel(typeTenant, tenantID, relPartner, &v1.SubjectReference{Object: object(typePartner, partnerID)})),
			}
			for _, r := range current {
				if r.GetSubject().GetObject().GetObjectId() != partnerID {
					updates = append(updates, del(r))
				}
			}
			return append(out, Step{Updates: updates, Pre: pre, Failed: errStale}), nil
		}}
}

// DeleteTenant offboards the tenant (see Plans.DeleteTenant).
func (g *Graph) DeleteTenant(ctx context.Context, tenantID string) (string, error) {
	return g.run(ctx, g.Plans().DeleteTenant(tenantID))
}

// DeleteTenant offboards the tenant. Its own relationships go first, in one
// call: that ends every grant in it at once and makes every later write to the
// tenant fail. Its custom roles and resources (object ids prefixed by the
// tenant id) follow. A tenant re-created meanwhile keeps its new objects: the
// purge only runs while the tenant does not exist, and PutTenant repeats it
// before re-creating, so nothing of the old tenant survives either way.
func (p Plans) DeleteTenant(tenantID string) Write {
	return Write{Plan: func(ctx context.Context, r Reader) ([]Step, error) {
		purge, err := p.purgeTenantObjects(ctx, r, tenantID, false)
		if err != nil {
			return nil, err
		}
		return append([]Step{{Delete: &v1.RelationshipFilter{ResourceType: typeTenant, OptionalResourceId: tenantID}}}, purge...), nil
	}}
}

// purgeTenantObjects plans the deletion of the custom roles and resources
// under a tenant id, each deletion conditioned on the tenant not existing (so
// that it never touches a re-created tenant's objects).
//
// With onlyIfAny, a kind of object is first read (one relationship, fully
// consistent) and deleted only if something is there: creating a tenant that
// never existed then costs reads, not write transactions. Nothing can appear
// under the id between that read and the creation, since every write into a
// tenant requires it to exist.
func (p Plans) purgeTenantObjects(ctx context.Context, r Reader, tenantID string, onlyIfAny bool) ([]Step, error) {
	filters := []*v1.RelationshipFilter{{ResourceType: typeRole, OptionalResourceIdPrefix: tenantID + "/"}}
	for _, t := range p.m.resourceTypeNames() {
		filters = append(filters, &v1.RelationshipFilter{ResourceType: t, OptionalResourceIdPrefix: tenantID + "/"})
	}
	pre := []*v1.Precondition{absent(typeTenant, tenantID, relPlatform)}
	var out []Step
	for _, f := range filters {
		if onlyIfAny {
			found, err := r.Read(ctx, f, 1)
			if err != nil {
				return nil, err
			}
			if len(found) == 0 {
				continue
			}
		}
		out = append(out, Step{Delete: f, Pre: pre, Failed: errSkipped, Optional: true})
	}
	return out, nil
}

// errSkipped marks a conditional clean-up that did not run because its
// condition no longer held; callers treat it as done.
var errSkipped = errors.New("skipped: condition no longer holds")

// PutSuperAdmin makes the subject a platform super admin.
func (g *Graph) PutSuperAdmin(ctx context.Context, s authz.Subject) (string, error) {
	return g.run(ctx, g.Plans().SetSuperAdmin(s, true))
}

// DeleteSuperAdmin revokes platform super admin.
func (g *Graph) DeleteSuperAdmin(ctx context.Context, s authz.Subject) (string, error) {
	return g.run(ctx, g.Plans().SetSuperAdmin(s, false))
}

// SetSuperAdmin makes the subject a platform super admin (add) or revokes it.
func (p Plans) SetSuperAdmin(s authz.Subject, add bool) Write {
	return steps(Step{Updates: []*v1.RelationshipUpdate{opOf(add)(rel(typePlatform, platformID, relSuperAdmin, subjectRef(s)))}})
}

// PutPartnerAdmin makes the subject an admin of the partner.
func (g *Graph) PutPartnerAdmin(ctx context.Context, partnerID string, s authz.Subject) (string, error) {
	return g.run(ctx, g.Plans().SetPartnerAdmin(partnerID, s, true))
}

// DeletePartnerAdmin revokes partner admin.
func (g *Graph) DeletePartnerAdmin(ctx context.Context, partnerID string, s authz.Subject) (string, error) {
	return g.run(ctx, g.Plans().SetPartnerAdmin(partnerID, s, false))
}

// SetPartnerAdmin makes the subject an admin of the partner (add; the
// partner must exist) or revokes it.
func (p Plans) SetPartnerAdmin(partnerID string, s authz.Subject, add bool) Write {
	if !add {
		return steps(Step{Updates: []*v1.RelationshipUpdate{del(rel(typePartner, partnerID, relAdmin, subjectRef(s)))}})
	}
	return steps(Step{Updates: []*v1.RelationshipUpdate{touch(rel(typePartner, partnerID, relAdmin, subjectRef(s)))},
		Pre: []*v1.Precondition{exists(typePartner, partnerID, relPlatform)}, Failed: partnerNotFound(partnerID)})
}

// opOf is touch for an addition, del for a removal.
func opOf(add bool) func(*v1.Relationship) *v1.RelationshipUpdate {
	if add {
		return touch
	}
	return del
}

func roleMembers(roleObjectID string) *v1.SubjectReference {
	return &v1.SubjectReference{Object: object(typeRole, roleObjectID), OptionalRelation: relMember}
}

func roleNotFound(tenantID, roleID string) error {
	return authz.Errorf(authz.ENOTFOUND, "role %q does not exist in tenant %q", roleID, tenantID)
}

// grants reads the keys a custom role holds: the tenant's grant_<key>
// relationships whose subject is the role's members.
func (g *Graph) grants(ctx context.Context, tenantID, roleObjectID string) ([]*v1.Relationship, error) {
	return g.read(ctx, &v1.RelationshipFilter{
		ResourceType: typeTenant, OptionalResourceId: tenantID,
		OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: typeRole, OptionalSubjectId: roleObjectID,
			OptionalRelation: &v1.SubjectFilter_RelationFilter{Relation: relMember}},
	})
}

// PutRole creates or replaces a custom role so that it holds exactly keys
// (see Plans.PutRole).
func (g *Graph) PutRole(ctx context.Context, tenantID, roleID string, keys []authz.Key) (string, error) {
	return g.run(ctx, g.Plans().PutRole(tenantID, roleID, keys))
}

// PutRole creates or replaces a custom role so that it holds exactly keys.
// It is one write that needs no read: it adds the wanted grants and deletes
// every other grant the schema's catalogue knows, so concurrent replacements
// end with exactly one caller's key set, never a union.
func (p Plans) PutRole(tenantID, roleID string, keys []authz.Key) Write {
	return Write{Plan: func(context.Context, Reader) ([]Step, error) {
		oid, err := authz.ScopedID("role_id", tenantID, roleID)
		if err != nil {
			return nil, err
		}
		want := map[string]bool{}
		for _, k := range keys {
			want[k.GrantRelation()] = true
		}
		updates := make([]*v1.RelationshipUpdate, 0, 1+len(p.m.grants))
		updates = append(updates, touch(rel(typeRole, oid, relTenant, &v1.SubjectReference{Object: object(typeTenant, tenantID)})))
		for _, r := range p.m.grants {
			op := del
			if want[r] {
				op = touch
				delete(want, r)
			}
			updates = append(updates, op(rel(typeTenant, tenantID, r, roleMembers(oid))))
		}
		if len(want) > 0 {
			return nil, authz.Errorf(authz.EINTERNAL, "role grants %v are not in the schema", want)
		}
		return []Step{{Updates: updates, Pre: []*v1.Precondition{exists(typeTenant, tenantID, relPlatform)}, Failed: tenantNotFound(tenantID)}}, nil
	}}
}

// GetRole returns the keys a custom role holds.
func (g *Graph) GetRole(ctx context.Context, tenantID, roleID string) ([]authz.Key, error) {
	oid, err := authz.ScopedID("role_id", tenantID, roleID)
	if err != nil {
		return nil, err
	}
	exist, err := g.read(ctx, &v1.RelationshipFilter{ResourceType: typeRole, OptionalResourceId: oid, OptionalRelation: relTenant})
	if err != nil {
		return nil, err
	}
	if len(exist) == 0 {
		return nil, roleNotFound(tenantID, roleID)
	}
	current, err := g.grants(ctx, tenantID, oid)
	if err != nil {
		return nil, err
	}
	keys := make([]authz.Key, 0, len(current))
	for _, r := range current {
		name := r.GetRelation()[len(authz.GrantPrefix):]
		k, err := authz.KeyFromRelation(name)
		if err != nil {
			return nil, authz.Wrap(authz.EINTERNAL, err, "unreadable role grant")
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys, nil
}

// DeleteRole removes a custom role (see Plans.DeleteRole).
func (g *Graph) DeleteRole(ctx context.Context, tenantID, roleID string) (string, error) {
	return g.run(ctx, g.Plans().DeleteRole(tenantID, roleID))
}

// DeleteRole removes a custom role. The role with its members goes first, in
// one call, so access through it ends at once and no member can be added
// after it; its grants follow unless the role was re-created meanwhile (then
// they are the new role's). Grants left by an interrupted delete grant nobody
// anything (the role has no members) and PutRole replaces them.
func (p Plans) DeleteRole(tenantID, roleID string) Write {
	return Write{Plan: func(context.Context, Reader) ([]Step, error) {
		oid, err := authz.ScopedID("role_id", tenantID, roleID)
		if err != nil {
			return nil, err
		}
		return []Step{
			{Delete: &v1.RelationshipFilter{ResourceType: typeRole, OptionalResourceId: oid},
				Pre: []*v1.Precondition{exists(typeRole, oid, relTenant)}, Failed: roleNotFound(tenantID, roleID)},
			{Delete: &v1.RelationshipFilter{
				ResourceType: typeTenant, OptionalResourceId: tenantID,
				OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: typeRole, OptionalSubjectId: oid,
					OptionalRelation: &v1.SubjectFilter_RelationFilter{Relation: relMember}},
			}, Pre: []*v1.Precondition{absent(typeRole, oid, relTenant)}, Failed: errSkipped, Optional: true},
		}, nil
	}}
}

// SetMember adds (add=true) or removes a member of a built-in or custom role.
func (g *Graph) SetMember(ctx context.Context, tenantID, roleID string, s authz.Subject, add bool) (string, error) {
	return g.run(ctx, g.Plans().SetMember(tenantID, roleID, s, add))
}

// SetMember adds (add=true) or removes a member of a built-in or custom role.
func (p Plans) SetMember(tenantID, roleID string, s authz.Subject, add bool) Write {
	op := opOf(add)
	if authz.IsTenantRole(roleID) {
		return steps(Step{Updates: []*v1.RelationshipUpdate{op(rel(typeTenant, tenantID, roleID, subjectRef(s)))},
			Pre: []*v1.Precondition{exists(typeTenant, tenantID, relPlatform)}, Failed: tenantNotFound(tenantID)})
	}
	return Write{Plan: func(context.Context, Reader) ([]Step, error) {
		oid, err := authz.ScopedID("role_id", tenantID, roleID)
		if err != nil {
			return nil, err
		}
		// The tenant must exist too: during offboarding its roles outlive it for a
		// moment, and a member added then would outlive the offboarding.
		return []Step{{Updates: []*v1.RelationshipUpdate{op(rel(typeRole, oid, relMember, subjectRef(s)))},
			Pre:    []*v1.Precondition{exists(typeTenant, tenantID, relPlatform), exists(typeRole, oid, relTenant)},
			Failed: roleNotFound(tenantID, roleID)}}, nil
	}}
}

// PutResource records a tenant resource and its owner, replacing a previous
// owner (see Plans.PutResource).
func (g *Graph) PutResource(ctx context.Context, tenantID string, r authz.Resource, owner authz.Subject) (string, error) {
	return g.run(ctx, g.Plans().PutResource(tenantID, r, owner))
}

// PutResource records a tenant resource and its owner, replacing a previous
// owner. A resource has exactly one owner, so the write is conditioned on the
// owner it read (see unchanged); concurrent writes end with exactly one owner.
func (p Plans) PutResource(tenantID string, res authz.Resource, owner authz.Subject) Write {
	return Write{Gone: mustExist(typeTenant, tenantID, relPlatform, tenantNotFound(tenantID)),
		Plan: func(ctx context.Context, r Reader) ([]Step, error) {
			if _, ok := p.m.resources[res.Type]; !ok {
				return nil, authz.UnknownResourceType(res.Type, p.m.resourceTypeNames())
			}
			oid, err := authz.ScopedID("resource_id", tenantID, res.ID)
			if err != nil {
				return nil, err
			}
			current, err := r.Read(ctx, &v1.RelationshipFilter{ResourceType: res.Type, OptionalResourceId: oid, OptionalRelation: relOwner}, 0)
			if err != nil {
				return nil, err
			}
			updates := []*v1.RelationshipUpdate{
				touch(rel(res.Type, oid, relTenant, &v1.SubjectReference{Object: object(typeTenant, tenantID)})),
				touch(rel(res.Type, oid, relOwner, subjectRef(owner))),
			}
			for _, c := range current {
				o := c.GetSubject().GetObject()
				if o.GetObjectType() != owner.Kind || o.GetObjectId() != owner.ID {
					updates = append(updates, del(c))
				}
			}
			pre := append(unchanged(res.Type, oid, relOwner, current), exists(typeTenant, tenantID, relPlatform))
			return []Step{{Updates: updates, Pre: pre, Failed: errStale}}, nil
		}}
}

// DeleteResource removes a tenant resource.
func (g *Graph) DeleteResource(ctx context.Context, tenantID string, r authz.Resource) (string, error) {
	return g.run(ctx, g.Plans().DeleteResource(tenantID, r))
}

// DeleteResource removes a tenant resource.
func (p Plans) DeleteResource(tenantID string, res authz.Resource) Write {
	return Write{Plan: func(context.Context, Reader) ([]Step, error) {
		if _, ok := p.m.resources[res.Type]; !ok {
			return nil, authz.UnknownResourceType(res.Type, p.m.resourceTypeNames())
		}
		oid, err := authz.ScopedID("resource_id", tenantID, res.ID)
		if err != nil {
			return nil, err
		}
		return []Step{{Delete: &v1.RelationshipFilter{ResourceType: res.Type, OptionalResourceId: oid}}}, nil
	}}
}
