package spicedb

import (
	"context"
	"slices"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// Tenants lists every tenant with its partner, sorted by id.
func (g *Graph) Tenants(ctx context.Context) ([]authz.TenantInfo, error) {
	rs, err := g.read(ctx, &v1.RelationshipFilter{ResourceType: typeTenant, OptionalRelation: relPartner})
	if err != nil {
		return nil, err
	}
	out := make([]authz.TenantInfo, 0, len(rs))
	for _, r := range rs {
		out = append(out, authz.TenantInfo{ID: r.GetResource().GetObjectId(), PartnerID: r.GetSubject().GetObject().GetObjectId()})
	}
	slices.SortFunc(out, func(a, b authz.TenantInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// tenantRelationships reads the tenant's own relationships (built-in role
// members, custom role grants) and its custom roles' relationships (their
// tenant and members), or ENOTFOUND when the tenant does not exist.
func (g *Graph) tenantRelationships(ctx context.Context, tenantID string) (own, roles []*v1.Relationship, err error) {
	at, err := g.fresh(ctx)
	if err != nil {
		return nil, nil, err
	}
	if own, err = g.readAt(ctx, at, &v1.RelationshipFilter{ResourceType: typeTenant, OptionalResourceId: tenantID}, 0); err != nil {
		return nil, nil, err
	}
	exists := slices.ContainsFunc(own, func(r *v1.Relationship) bool { return r.GetRelation() == relPlatform })
	if !exists {
		return nil, nil, tenantNotFound(tenantID)
	}
	roles, err = g.readAt(ctx, at, &v1.RelationshipFilter{ResourceType: typeRole, OptionalResourceIdPrefix: tenantID + "/"}, 0)
	return own, roles, err
}

// memberOf reads a relationship's subject as an API subject (subjectOf's
// rule: a plain user or service account).
func memberOf(r *v1.Relationship) (authz.Subject, bool) {
	name, ok := subjectOf(r.GetSubject())
	if !ok {
		return authz.Subject{}, false
	}
	s, err := authz.ParseSubject("user_id", name)
	return s, err == nil
}

// Roles lists a tenant's built-in tenant roles (without keys: the manifests
// give them) and its custom roles with their keys, each with its member
// count: built-in roles first, then custom roles by id.
func (g *Graph) Roles(ctx context.Context, tenantID string) ([]authz.RoleInfo, error) {
	own, roleRels, err := g.tenantRelationships(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	byID := map[string]*authz.RoleInfo{}
	out := make([]*authz.RoleInfo, 0, len(authz.TenantRoles))
	for _, id := range authz.TenantRoles {
		ri := &authz.RoleInfo{ID: id, Builtin: true}
		byID[id] = ri
		out = append(out, ri)
	}
	prefix := tenantID + "/"
	var custom []*authz.RoleInfo
	for _, r := range roleRels {
		id := strings.TrimPrefix(r.GetResource().GetObjectId(), prefix)
		ri := byID[id]
		if ri == nil {
			ri = &authz.RoleInfo{ID: id, Keys: []authz.Key{}}
			byID[id] = ri
			custom = append(custom, ri)
		}
		if r.GetRelation() == relMember {
			ri.Members++
		}
	}
	for _, r := range own {
		rel := r.GetRelation()
		switch {
		case authz.IsTenantRole(rel):
			byID[rel].Members++
		case strings.HasPrefix(rel, authz.GrantPrefix) && r.GetSubject().GetObject().GetObjectType() == typeRole:
			ri := byID[strings.TrimPrefix(r.GetSubject().GetObject().GetObjectId(), prefix)]
			if ri == nil || ri.Builtin {
				continue // the grants of a role being deleted
			}
			k, err := authz.KeyFromRelation(rel[len(authz.GrantPrefix):])
			if err != nil {
				return nil, authz.Wrap(authz.EINTERNAL, err, "unreadable role grant")
			}
			ri.Keys = append(ri.Keys, k)
		}
	}
	slices.SortFunc(custom, func(a, b *authz.RoleInfo) int { return strings.Compare(a.ID, b.ID) })
	res := make([]authz.RoleInfo, 0, len(out)+len(custom))
	for _, ri := range append(out, custom...) {
		slices.SortFunc(ri.Keys, func(a, b authz.Key) int { return strings.Compare(a.String(), b.String()) })
		res = append(res, *ri)
	}
	return res, nil
}

// Members lists every subject holding a built-in or custom role in the
// tenant, with the roles it holds, sorted by user id.
func (g *Graph) Members(ctx context.Context, tenantID string) ([]authz.Member, error) {
	own, roleRels, err := g.tenantRelationships(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	bySubject := map[string]*authz.Member{}
	add := func(r *v1.Relationship, role string) {
		s, ok := memberOf(r)
		if !ok {
			return
		}
		m := bySubject[s.String()]
		if m == nil {
			m = &authz.Member{Subject: s}
			bySubject[s.String()] = m
		}
		if !slices.Contains(m.Roles, role) {
			m.Roles = append(m.Roles, role)
		}
	}
	for _, r := range own {
		if authz.IsTenantRole(r.GetRelation()) {
			add(r, r.GetRelation())
		}
	}
	prefix := tenantID + "/"
	for _, r := range roleRels {
		if r.GetRelation() == relMember {
			add(r, strings.TrimPrefix(r.GetResource().GetObjectId(), prefix))
		}
	}
	out := make([]authz.Member, 0, len(bySubject))
	for _, m := range bySubject {
		slices.Sort(m.Roles)
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b authz.Member) int { return strings.Compare(a.Subject.String(), b.Subject.String()) })
	return out, nil
}
