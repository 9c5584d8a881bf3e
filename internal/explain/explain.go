// Package explain turns SpiceDB's trace of a check and the relationships
// around it (authz.Explanation) into sentences a tenant admin understands:
// which built-in or custom role, which partner, ownership and the binder
// exclusion made a decision, or, for a deny, what is missing.
//
// It is pure: the SpiceDB adapter gathers the trace and the facts at the
// revision of the decision, and this package only reads them.
package explain

import (
	"fmt"
	"slices"
	"strings"

	"github.com/scailabs/authzd/internal/authz"
)

// Input is one explained check.
type Input struct {
	Check       authz.Check
	Explanation authz.Explanation
	// KeyRoles are the built-in roles that hold the key without a custom role,
	// from the key's manifest (always including authz.RoleSuperAdmin).
	KeyRoles []string
	// RoleNames are the names of the tenant's custom roles by id, where known.
	RoleNames map[string]string
}

// Reasons explains the decision in sentences, most decisive first.
func Reasons(in Input) []string {
	e := &explainer{in: in, f: in.Explanation.Facts, who: subjectName(in.Check.Subject)}
	if in.Explanation.Decision.Allowed {
		e.allowed()
	} else {
		e.denied()
	}
	return e.out
}

// Reasons do not depend on whether SpiceDB answered part of the trace from
// its dispatch cache (a cached step comes without sub-steps): such a step is
// explained from the facts, read at the same revision, in the same sentences
// as the full walk gives.
type explainer struct {
	in  Input
	f   authz.Facts
	who string
	out []string
}

func (e *explainer) say(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !slices.Contains(e.out, s) {
		e.out = append(e.out, s)
	}
}

func subjectName(s authz.Subject) string {
	if s.Kind == authz.SubjectServiceAccount {
		return "service account " + s.ID
	}
	return s.ID
}

func (e *explainer) tenant() string { return e.in.Check.TenantID }
func (e *explainer) key() string    { return e.in.Check.Key.String() }

func (e *explainer) resourceName() string {
	r := e.in.Check.Resource
	return r.Type + " " + r.ID
}

// allowed explains a yes from the trace, falling back on the facts for the
// steps SpiceDB answered from its cache.
func (e *explainer) allowed() {
	t := e.in.Explanation.Trace
	if t == nil || (t.Cached && len(t.Steps) == 0) {
		e.fromFacts()
	} else {
		e.walk(t, "")
		if len(e.out) == 0 {
			e.fromFacts()
		}
	}
	if e.in.Check.Resource != nil && e.f.OwnerRule == authz.OwnerExcluded {
		e.say("%s did not bind %s, so the binder exclusion does not apply.", e.who, e.resourceName())
	}
}

// walk follows the steps that found the permission down to the stored
// relationships that granted it. key is the tenant-level key being resolved
// at this depth ("" above the tenant).
func (e *explainer) walk(n *authz.Trace, key string) {
	if n.Result != authz.TraceHas {
		return
	}
	typ, id, _ := strings.Cut(n.Object, ":")
	stepKey, isKey := tenantKey(typ, n.Permission)
	if isKey {
		key = stepKey
	}
	found := false
	for _, s := range n.Steps {
		if s.Result == authz.TraceHas {
			found = true
			e.walk(s, key)
		}
	}
	if found {
		return
	}
	// A step that found the permission without a found sub-step is either a
	// stored relationship or a step SpiceDB answered from its cache (which it
	// reports without sub-steps, and sometimes as a permission).
	switch {
	case isKey && stepKey == e.key():
		if !e.holders() {
			e.say("%s holds %s in tenant %s.", e.who, stepKey, e.tenant())
		}
	case isKey:
		e.say("%s holds %s in tenant %s.", e.who, stepKey, e.tenant())
	default:
		e.leaf(typ, id, n.Permission, key)
	}
}

// tenantKey reports whether a step is a key's permission on a tenant, and which key.
func tenantKey(typ, permission string) (string, bool) {
	if typ != authz.TypeTenant || !strings.Contains(permission, "__") || strings.HasPrefix(permission, authz.GrantPrefix) {
		return "", false
	}
	k, err := authz.KeyFromRelation(permission)
	if err != nil {
		return "", false
	}
	return k.String(), true
}

// leaf explains one stored relationship that granted the permission.
func (e *explainer) leaf(typ, id, relation, key string) {
	grants := "which grants " + key
	if key == "" {
		grants = fmt.Sprintf("which grants %s on %s by itself", e.key(), e.resourceNameOr("the tenant"))
	}
	switch {
	case typ == authz.TypePlatform && relation == authz.RoleSuperAdmin:
		e.say("%s is a platform super admin; super admins hold every key in every tenant.", e.who)
	case typ == authz.TypePartner && relation == authz.RelAdmin:
		e.partnerAdmin(id, orKey(key, e.key()))
	case typ == authz.TypeTenant && relation == authz.RolePartnerAdmin:
		// The tenant's partner_admin permission (partner->admin) answered
		// from SpiceDB's cache: the facts name the partner.
		e.partnerAdmin(e.f.PartnerID, orKey(key, e.key()))
	case typ == authz.TypeTenant && relation == authz.RoleSuperAdmin:
		// The tenant's super_admin permission (platform->super_admin), likewise.
		e.say("%s is a platform super admin; super admins hold every key in every tenant.", e.who)
	case typ == "tenant" && authz.IsTenantRole(relation):
		e.say("%s holds the built-in role %s in tenant %s, %s.", e.who, relation, e.tenant(), grants)
	case typ == authz.TypeRole && relation == authz.RelMember:
		for _, r := range e.roleIDs(id) {
			e.say("%s is a member of the custom role %s of tenant %s, %s.", e.who, e.role(r), e.tenant(), grants)
		}
	case typ == "tenant" && strings.HasPrefix(relation, authz.GrantPrefix):
		// A grant whose role membership SpiceDB answered from its cache: the
		// facts name the roles for the checked key; for another key, say less.
		roles := intersect(e.f.CustomRoles, e.f.GrantingRoles)
		if relation != e.in.Check.Key.GrantRelation() || len(roles) == 0 {
			e.say("%s holds %s in tenant %s through a custom role.", e.who, orKey(key, e.key()), e.tenant())
		}
		for _, r := range roles {
			if relation == e.in.Check.Key.GrantRelation() {
				e.say("%s is a member of the custom role %s of tenant %s, %s.", e.who, e.role(r), e.tenant(), grants)
			}
		}
	case relation == authz.RelOwner && e.in.Check.Resource != nil:
		if e.f.OwnerRule == authz.OwnerRequired {
			e.say("%s owns %s; %s on a %s needs ownership as well as the key.", e.who, e.resourceName(), e.key(), e.in.Check.Resource.Type)
		} else {
			e.say("%s owns %s.", e.who, e.resourceName())
		}
	default:
		e.say("%s has the relation %s on %s:%s.", e.who, relation, typ, id)
	}
}

func orKey(key, fallback string) string {
	if key == "" {
		return fallback
	}
	return key
}

func (e *explainer) resourceNameOr(s string) string {
	if e.in.Check.Resource == nil {
		return s
	}
	return e.resourceName()
}

// roleIDs turns the object id of a role step ("t1/ops", or several joined by
// ',' when SpiceDB checked them together) into the tenant-local ids the
// subject is a member of.
func (e *explainer) roleIDs(objectID string) []string {
	var ids []string
	for _, id := range strings.Split(objectID, ",") {
		ids = append(ids, strings.TrimPrefix(id, authz.TenantPrefix(e.tenant())))
	}
	if len(ids) == 1 {
		return ids
	}
	return intersect(ids, e.f.CustomRoles)
}

// holders explains from the facts how the subject holds the checked key in
// the tenant; it reports whether it does.
func (e *explainer) holders() bool {
	n := len(e.out)
	key, t := e.key(), e.tenant()
	if e.f.SuperAdmin && slices.Contains(e.in.KeyRoles, authz.RoleSuperAdmin) {
		e.say("%s is a platform super admin; super admins hold every key in every tenant.", e.who)
	}
	if e.f.PartnerAdmin && slices.Contains(e.in.KeyRoles, authz.RolePartnerAdmin) {
		e.partnerAdmin(e.f.PartnerID, key)
	}
	for _, r := range e.f.BuiltinRoles {
		if slices.Contains(e.in.KeyRoles, r) {
			e.say("%s holds the built-in role %s in tenant %s, which grants %s.", e.who, r, t, key)
		}
	}
	for _, r := range intersect(e.f.CustomRoles, e.f.GrantingRoles) {
		e.say("%s is a member of the custom role %s of tenant %s, which grants %s.", e.who, e.role(r), t, key)
	}
	return len(e.out) > n
}

// partnerAdmin says that the subject holds key as an admin of partner, which
// the tenant belongs to.
func (e *explainer) partnerAdmin(partner, key string) {
	e.say("%s is an admin of partner %s, which tenant %s belongs to; partner admins hold %s.", e.who, partner, e.tenant(), key)
}

// fromFacts explains a yes without a usable trace.
func (e *explainer) fromFacts() {
	e.holders()
	if e.in.Check.Resource != nil && e.f.OwnerRule == authz.OwnerRequired && e.owns() {
		e.say("%s owns %s; %s on a %s needs ownership as well as the key.", e.who, e.resourceName(), e.key(), e.in.Check.Resource.Type)
	}
}

func (e *explainer) owns() bool { return slices.Contains(e.f.Owners, e.in.Check.Subject) }

// denied explains a no: what is missing.
func (e *explainer) denied() {
	key, t := e.key(), e.tenant()
	if e.f.PartnerID == "" {
		e.say("Tenant %s does not exist, so nobody holds any key in it.", t)
		return
	}
	start := len(e.out)
	held := e.holders()
	mid := len(e.out)
	// When the key is held, what is missing is on the resource: say that first.
	defer func() {
		if held {
			e.out = slices.Concat(e.out[:start], e.out[mid:], e.out[start:mid])
		}
	}()
	if !held {
		e.say("No role grants %s to %s in tenant %s.", key, e.who, t)
		e.say("%s is granted by %s.", key, e.grantedBy())
		if roles := e.heldRoles(); len(roles) > 0 {
			e.say("%s holds %s in tenant %s; none of them grants %s.", e.who, strings.Join(roles, ", "), t, key)
		} else {
			e.say("%s holds no role in tenant %s.", e.who, t)
		}
	}
	r := e.in.Check.Resource
	if r == nil {
		return
	}
	if !e.f.ResourceExists {
		e.say("%s is not registered in tenant %s.", e.resourceName(), t)
		return
	}
	switch e.f.OwnerRule {
	case authz.OwnerRequired:
		if !e.owns() {
			e.say("%s is not the owner of %s (%s); %s on a %s needs ownership as well as the key.", e.who, e.resourceName(), e.ownerNames(), key, r.Type)
		}
	case authz.OwnerExcluded:
		if e.owns() {
			e.say("%s bound %s, and the binder of a %s can never hold %s on it, whatever roles they hold.", e.who, e.resourceName(), r.Type, key)
		}
	}
}

func (e *explainer) ownerNames() string {
	if len(e.f.Owners) == 0 {
		return "it has no owner"
	}
	names := make([]string, len(e.f.Owners))
	for i, o := range e.f.Owners {
		names[i] = subjectName(o)
	}
	return "the owner is " + strings.Join(names, ", ")
}

// grantedBy lists what would grant the key in the tenant.
func (e *explainer) grantedBy() string {
	var parts []string
	for _, r := range e.in.KeyRoles {
		switch r {
		case authz.RoleSuperAdmin:
			parts = append(parts, "platform super admins")
		case authz.RolePartnerAdmin:
			parts = append(parts, "admins of partner "+e.f.PartnerID)
		default:
			parts = append(parts, "the built-in role "+r)
		}
	}
	switch len(e.f.GrantingRoles) {
	case 0:
		parts = append(parts, "no custom role of tenant "+e.tenant())
	case 1:
		parts = append(parts, "the custom role "+e.role(e.f.GrantingRoles[0]))
	default:
		q := make([]string, len(e.f.GrantingRoles))
		for i, r := range e.f.GrantingRoles {
			q[i] = e.role(r)
		}
		parts = append(parts, "the custom roles "+strings.Join(q, ", "))
	}
	return strings.Join(parts, ", ")
}

// heldRoles lists the roles the subject holds in the tenant.
func (e *explainer) heldRoles() []string {
	var out []string
	if e.f.SuperAdmin {
		out = append(out, "platform super admin")
	}
	if e.f.PartnerAdmin {
		out = append(out, "admin of partner "+e.f.PartnerID)
	}
	for _, r := range e.f.BuiltinRoles {
		out = append(out, "the built-in role "+r)
	}
	for _, r := range e.f.CustomRoles {
		out = append(out, "the custom role "+e.role(r))
	}
	return out
}

// role names a custom role: "Bot operators" (id ops), or "ops" when its
// name is unknown.
func (e *explainer) role(id string) string {
	if name, ok := e.in.RoleNames[id]; ok && name != id {
		return fmt.Sprintf("%q (id %s)", name, id)
	}
	return fmt.Sprintf("%q", id)
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
