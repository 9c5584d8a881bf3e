package spicedb

import (
	"cmp"
	"context"
	"errors"
	"io"
	"slices"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scailabs/authzd/internal/authz"
)

// importBarrierObject is the tenant the barriers of imports and exports
// delete: its id holds '/', which no tenant authzd provisions can have.
const importBarrierObject = "authzd/import"

// ImportBarrier sends a write that changes nothing, tagged with the write id
// in ctx, and returns its revision: it includes every write committed before
// the call, so a check at least as fresh as it sees all of them.
func (g *Graph) ImportBarrier(ctx context.Context) (string, error) {
	return g.deleteWhere(ctx, &v1.RelationshipFilter{ResourceType: typeTenant, OptionalResourceId: importBarrierObject}, nil, nil)
}

// errImportConflict is a batch whose conditions no longer held when it was
// written: another writer changed what the import read.
var errImportConflict = authz.Errorf(authz.ECONFLICT,
	"a partner, tenant, role or resource the document refers to changed while it was imported; run the import again")

// WriteBatch applies one batch of an import atomically, conditioned as the
// PUT routes condition their writes. A batch SpiceDB refuses for its size
// answers ETOOLARGE, so the caller can split it.
func (g *Graph) WriteBatch(ctx context.Context, updates []authz.Update, conditions []authz.Condition) (string, error) {
	req := &v1.WriteRelationshipsRequest{Updates: make([]*v1.RelationshipUpdate, len(updates))}
	for i, u := range updates {
		r := u.Relationship
		subj := &v1.SubjectReference{Object: object(r.SubjectType, r.SubjectID), OptionalRelation: r.SubjectRel}
		x := rel(r.ResourceType, r.ResourceID, r.Relation, subj)
		if u.Delete {
			req.Updates[i] = del(x)
		} else {
			req.Updates[i] = touch(x)
		}
	}
	for _, c := range conditions {
		f := &v1.RelationshipFilter{ResourceType: c.ResourceType, OptionalResourceId: c.ResourceID, OptionalRelation: c.Relation}
		if c.SubjectType != "" {
			f.OptionalSubjectFilter = &v1.SubjectFilter{SubjectType: c.SubjectType, OptionalSubjectId: c.SubjectID}
		}
		op := v1.Precondition_OPERATION_MUST_NOT_MATCH
		if c.Exists {
			op = v1.Precondition_OPERATION_MUST_MATCH
		}
		req.OptionalPreconditions = append(req.OptionalPreconditions, &v1.Precondition{Operation: op, Filter: f})
	}
	id, md := g.newWriteID(ctx)
	req.OptionalTransactionMetadata = md
	return g.retryWrite(ctx, id, func(ctx context.Context) (string, error) {
		resp, err := g.perms.WriteRelationships(ctx, req)
		switch {
		case err == nil:
			return resp.GetWrittenAt().GetToken(), nil
		case isFailedPrecondition(err):
			return "", errImportConflict
		case tooLarge(err):
			return "", authz.Wrap(authz.ETOOLARGE, err, "SpiceDB refused the batch for its size")
		}
		return "", mapError(err, "import batch")
	})
}

// tooLarge reports SpiceDB refusing a write for its number of updates or
// preconditions (its --write-relationships-max-*-per-call limits).
func tooLarge(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			switch info.GetReason() {
			case v1.ErrorReason_ERROR_REASON_TOO_MANY_UPDATES_IN_REQUEST.String(),
				v1.ErrorReason_ERROR_REASON_TOO_MANY_PRECONDITIONS_IN_REQUEST.String():
				return true
			}
		}
	}
	return false
}

// ReadWorld reads the provisioning state at one revision: everything, or
// with tenantID the tenant, its roles, members and resources and its
// partner's partner record.
func (g *Graph) ReadWorld(ctx context.Context, tenantID string) (authz.World, error) {
	token, err := g.ImportBarrier(ctx)
	if err != nil {
		return nil, err
	}
	w := newWorld(token)
	at := atBarrier(token)
	each := func(f *v1.RelationshipFilter) error { return g.readEach(ctx, at, f, w.add) }
	var filters []*v1.RelationshipFilter
	if tenantID == "" {
		for _, t := range append([]string{typePlatform, typePartner, typeTenant, typeRole}, g.model.resourceTypeNames()...) {
			filters = append(filters, &v1.RelationshipFilter{ResourceType: t})
		}
	} else {
		filters = append(filters, &v1.RelationshipFilter{ResourceType: typeTenant, OptionalResourceId: tenantID},
			&v1.RelationshipFilter{ResourceType: typeRole, OptionalResourceIdPrefix: tenantID + "/"})
		for _, t := range g.model.resourceTypeNames() {
			filters = append(filters, &v1.RelationshipFilter{ResourceType: t, OptionalResourceIdPrefix: tenantID + "/"})
		}
	}
	for _, f := range filters {
		if err := each(f); err != nil {
			return nil, err
		}
	}
	if tenantID != "" {
		if t := w.tenants[tenantID]; t != nil && len(t.partners) == 1 {
			if err := each(&v1.RelationshipFilter{ResourceType: typePartner, OptionalResourceId: t.partners[0], OptionalRelation: relPlatform}); err != nil {
				return nil, err
			}
		}
	}
	w.settle()
	return w, nil
}

// readEach streams the relationships matching f at one revision into fn.
// A whole world takes longer than one call's timeout: the caller's context
// bounds it (an import's or export's deadline).
func (g *Graph) readEach(ctx context.Context, at *v1.Consistency, f *v1.RelationshipFilter, fn func(*v1.Relationship)) error {
	stream, err := g.perms.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{Consistency: at, RelationshipFilter: f})
	if err != nil {
		return mapError(err, "read relationships")
	}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return mapError(err, "read relationships")
		}
		fn(r.GetRelationship())
	}
}

// world is authz.World over relationships read from SpiceDB.
type world struct {
	revision      string
	partners      map[string]bool
	superAdmins   map[string]bool            // subject as written in the API
	partnerAdmins map[string]map[string]bool // partner id -> subjects
	tenants       map[string]*tenantState
	unexpressed   int
}

type tenantState struct {
	exists   bool     // tenant:T#platform
	partners []string // tenant:T#partner subjects; one when well formed
	members  map[string]map[string]bool
	roles    map[string]*roleState
	// resources are keyed by type and id joined with '\x00'.
	resources map[string]*resourceState
	// rels are every relationship of the tenant and its objects, kept only
	// while the tenant does not exist (what PutTenant purges).
	rels []authz.Relationship
}

type roleState struct {
	exists  bool
	grants  []string // grant relations on the tenant
	members map[string]bool
}

type resourceState struct {
	exists bool
	owners []string
}

var _ authz.World = (*world)(nil)

func newWorld(revision string) *world {
	return &world{revision: revision, partners: map[string]bool{}, superAdmins: map[string]bool{},
		partnerAdmins: map[string]map[string]bool{}, tenants: map[string]*tenantState{}}
}

func (w *world) tenant(id string) *tenantState {
	t := w.tenants[id]
	if t == nil {
		t = &tenantState{members: map[string]map[string]bool{}, roles: map[string]*roleState{}, resources: map[string]*resourceState{}}
		w.tenants[id] = t
	}
	return t
}

func (t *tenantState) role(id string) *roleState {
	r := t.roles[id]
	if r == nil {
		r = &roleState{members: map[string]bool{}}
		t.roles[id] = r
	}
	return r
}

// subjectOf is a plain user or service account subject as written in the
// API; ok is false for any other subject.
func subjectOf(s *v1.SubjectReference) (string, bool) {
	if s.GetOptionalRelation() != "" {
		return "", false
	}
	o := s.GetObject()
	switch o.GetObjectType() {
	case typeUser:
		return o.GetObjectId(), true
	case typeServiceAccount:
		return authz.ServiceAccountPrefix + o.GetObjectId(), true
	}
	return "", false
}

func relationshipOf(r *v1.Relationship) authz.Relationship {
	return authz.Relationship{
		ResourceType: r.GetResource().GetObjectType(), ResourceID: r.GetResource().GetObjectId(), Relation: r.GetRelation(),
		SubjectType: r.GetSubject().GetObject().GetObjectType(), SubjectID: r.GetSubject().GetObject().GetObjectId(),
		SubjectRel: r.GetSubject().GetOptionalRelation(),
	}
}

// add files one relationship; what no record can express is counted.
func (w *world) add(r *v1.Relationship) {
	res := r.GetResource()
	subj, isSubject := subjectOf(r.GetSubject())
	so := r.GetSubject().GetObject()
	switch res.GetObjectType() {
	case typePlatform:
		if res.GetObjectId() == platformID && r.GetRelation() == relSuperAdmin && isSubject {
			w.superAdmins[subj] = true
			return
		}
	case typePartner:
		p := res.GetObjectId()
		switch {
		case r.GetRelation() == relPlatform && so.GetObjectType() == typePlatform:
			w.partners[p] = true
			return
		case r.GetRelation() == relAdmin && isSubject:
			if w.partnerAdmins[p] == nil {
				w.partnerAdmins[p] = map[string]bool{}
			}
			w.partnerAdmins[p][subj] = true
			return
		}
	case typeTenant:
		id := res.GetObjectId()
		if strings.Contains(id, "/") {
			return // barrier objects, never a tenant
		}
		t := w.tenant(id)
		t.rels = append(t.rels, relationshipOf(r))
		switch rl := r.GetRelation(); {
		case rl == relPlatform && so.GetObjectType() == typePlatform:
			t.exists = true
			return
		case rl == relPartner && so.GetObjectType() == typePartner:
			t.partners = append(t.partners, so.GetObjectId())
			return
		case authz.IsTenantRole(rl) && isSubject:
			if t.members[rl] == nil {
				t.members[rl] = map[string]bool{}
			}
			t.members[rl][subj] = true
			return
		case strings.HasPrefix(rl, authz.GrantPrefix) && so.GetObjectType() == typeRole && r.GetSubject().GetOptionalRelation() == relMember:
			if tid, rid, ok := strings.Cut(so.GetObjectId(), "/"); ok && tid == id {
				role := t.role(rid)
				role.grants = append(role.grants, rl)
				return
			}
		}
	default:
		tid, local, ok := strings.Cut(res.GetObjectId(), "/")
		if !ok {
			break
		}
		t := w.tenant(tid)
		if !t.exists {
			// Tenants are read first, so only a tenant that does not
			// exist keeps its objects' relationships (for its purge).
			t.rels = append(t.rels, relationshipOf(r))
		}
		if res.GetObjectType() == typeRole {
			role := t.role(local)
			switch {
			case r.GetRelation() == relTenant && so.GetObjectType() == typeTenant && so.GetObjectId() == tid:
				role.exists = true
				return
			case r.GetRelation() == relMember && isSubject:
				role.members[subj] = true
				return
			}
			break
		}
		key := res.GetObjectType() + "\x00" + local
		rs := t.resources[key]
		if rs == nil {
			rs = &resourceState{}
			t.resources[key] = rs
		}
		switch {
		case r.GetRelation() == relTenant && so.GetObjectType() == typeTenant && so.GetObjectId() == tid:
			rs.exists = true
			return
		case r.GetRelation() == relOwner && isSubject:
			rs.owners = append(rs.owners, subj)
			return
		}
	}
	w.unexpressed++
}

// settle drops what is kept only for tenants that do not exist.
func (w *world) settle() {
	for _, t := range w.tenants {
		if t.exists {
			t.rels = nil
		}
	}
}

func (w *world) Revision() string          { return w.revision }
func (w *world) HasPartner(id string) bool { return w.partners[id] }
func (w *world) HasTenant(id string) bool  { t := w.tenants[id]; return t != nil && t.exists }
func (w *world) HasRole(tid, rid string) bool {
	return w.HasTenant(tid) && w.tenants[tid].roles[rid] != nil && w.tenants[tid].roles[rid].exists
}

// liveTenant is the tenant's state when it exists, else nil: what is under
// the id of a tenant that does not exist is purged when it is created.
func (w *world) liveTenant(id string) *tenantState {
	if t := w.tenants[id]; t != nil && t.exists {
		return t
	}
	return nil
}

func subjectRel(s authz.Subject) (string, string) { return s.Kind, s.ID }

func relTo(resType, resID, relation string, s authz.Subject) authz.Relationship {
	st, sid := subjectRel(s)
	return authz.Relationship{ResourceType: resType, ResourceID: resID, Relation: relation, SubjectType: st, SubjectID: sid}
}

func touches(rs ...authz.Relationship) []authz.Update {
	out := make([]authz.Update, len(rs))
	for i, r := range rs {
		out[i] = authz.Update{Relationship: r}
	}
	return out
}

func deletes(rs ...authz.Relationship) []authz.Update {
	out := make([]authz.Update, len(rs))
	for i, r := range rs {
		out[i] = authz.Update{Delete: true, Relationship: r}
	}
	return out
}

// platformRel is a partner's or tenant's relationship to the platform.
func platformRel(resType, id string) authz.Relationship {
	return authz.Relationship{ResourceType: resType, ResourceID: id, Relation: relPlatform, SubjectType: typePlatform, SubjectID: platformID}
}

// parent is the condition that an object exists: a partner or tenant (its
// platform relationship) or a custom role (its tenant relationship).
func parent(resType, id string) authz.Condition {
	relation := relPlatform
	if resType == typeRole {
		relation = relTenant
	}
	return authz.Condition{Exists: true, ResourceType: resType, ResourceID: id, Relation: relation}
}

// still is the condition that a relationship read is still there.
func still(r authz.Relationship) authz.Condition {
	return authz.Condition{Exists: true, ResourceType: r.ResourceType, ResourceID: r.ResourceID, Relation: r.Relation,
		SubjectType: r.SubjectType, SubjectID: r.SubjectID}
}

// none is the condition that an object still has no relationship of relation.
func none(resType, id, relation string) authz.Condition {
	return authz.Condition{ResourceType: resType, ResourceID: id, Relation: relation}
}

// planned is a plan that creates when nothing is there and otherwise is
// unchanged.
func planned(there bool, updates ...authz.Relationship) authz.RecordPlan {
	if there {
		return authz.RecordPlan{Status: authz.StatusUnchanged}
	}
	return authz.RecordPlan{Status: authz.StatusCreated, Updates: touches(updates...)}
}

// Plan is what writing r takes: what its PUT route would write, less what
// is already there.
func (w *world) Plan(r authz.Record) authz.RecordPlan {
	switch r.Kind {
	case authz.KindPartner:
		return planned(w.partners[r.PartnerID], platformRel(typePartner, r.PartnerID))
	case authz.KindSuperAdmin:
		return planned(w.superAdmins[r.User.String()], relTo(typePlatform, platformID, relSuperAdmin, r.User))
	case authz.KindPartnerAdmin:
		p := planned(w.partnerAdmins[r.PartnerID][r.User.String()], relTo(typePartner, r.PartnerID, relAdmin, r.User))
		p.Conditions = []authz.Condition{parent(typePartner, r.PartnerID)}
		return p
	case authz.KindTenant:
		return w.planTenant(r)
	case authz.KindRole:
		return w.planRole(r)
	case authz.KindMember:
		t := w.liveTenant(r.TenantID)
		if authz.IsTenantRole(r.RoleID) {
			p := planned(t != nil && t.members[r.RoleID][r.User.String()], relTo(typeTenant, r.TenantID, r.RoleID, r.User))
			p.Conditions = []authz.Condition{parent(typeTenant, r.TenantID)}
			return p
		}
		oid := r.TenantID + "/" + r.RoleID
		there := t != nil && t.roles[r.RoleID] != nil && t.roles[r.RoleID].exists && t.roles[r.RoleID].members[r.User.String()]
		p := planned(there, relTo(typeRole, oid, relMember, r.User))
		p.Conditions = []authz.Condition{parent(typeTenant, r.TenantID), parent(typeRole, oid)}
		return p
	case authz.KindResource:
		return w.planResource(r)
	}
	return authz.RecordPlan{Status: authz.StatusUnchanged}
}

func (w *world) planTenant(r authz.Record) authz.RecordPlan {
	p := authz.RecordPlan{Conditions: []authz.Condition{parent(typePartner, r.PartnerID)}}
	partner := authz.Relationship{ResourceType: typeTenant, ResourceID: r.TenantID, Relation: relPartner, SubjectType: typePartner, SubjectID: r.PartnerID}
	t := w.tenants[r.TenantID]
	if t == nil || !t.exists {
		// As PutTenant: only while nobody else created it meanwhile.
		p.Status = authz.StatusCreated
		p.Updates = touches(platformRel(typeTenant, r.TenantID), partner)
		p.Conditions = append(p.Conditions, none(typeTenant, r.TenantID, relPlatform), none(typeTenant, r.TenantID, relPartner))
		if t != nil {
			p.Purge = deletes(t.rels...)
		}
		return p
	}
	if slices.Equal(t.partners, []string{r.PartnerID}) {
		p.Status = authz.StatusUnchanged
		return p
	}
	// A move, as PutTenant's: conditioned on the partners read, so that
	// concurrent moves end with one partner.
	p.Status = authz.StatusUpdated
	p.Updates = touches(partner)
	for _, old := range t.partners {
		was := authz.Relationship{ResourceType: typeTenant, ResourceID: r.TenantID, Relation: relPartner, SubjectType: typePartner, SubjectID: old}
		p.Conditions = append(p.Conditions, still(was))
		if old != r.PartnerID {
			p.Updates = append(p.Updates, deletes(was)...)
		}
	}
	return p
}

func (w *world) planRole(r authz.Record) authz.RecordPlan {
	oid := r.TenantID + "/" + r.RoleID
	p := authz.RecordPlan{Conditions: []authz.Condition{parent(typeTenant, r.TenantID)}}
	grant := func(relation string) authz.Relationship {
		return authz.Relationship{ResourceType: typeTenant, ResourceID: r.TenantID, Relation: relation,
			SubjectType: typeRole, SubjectID: oid, SubjectRel: relMember}
	}
	want := make([]string, len(r.Keys))
	for i, k := range r.Keys {
		want[i] = k.GrantRelation()
	}
	var have []string
	t := w.liveTenant(r.TenantID)
	exists := t != nil && t.roles[r.RoleID] != nil && t.roles[r.RoleID].exists
	if exists {
		have = t.roles[r.RoleID].grants
		p.Status = authz.StatusUnchanged
	} else {
		p.Status = authz.StatusCreated
		p.Updates = touches(authz.Relationship{ResourceType: typeRole, ResourceID: oid, Relation: relTenant, SubjectType: typeTenant, SubjectID: r.TenantID})
	}
	if t != nil && t.roles[r.RoleID] != nil && !exists {
		have = t.roles[r.RoleID].grants // grants an interrupted delete left behind
	}
	for _, g := range want {
		if !slices.Contains(have, g) {
			p.Updates = append(p.Updates, touches(grant(g))...)
		}
	}
	for _, g := range have {
		if !slices.Contains(want, g) {
			p.Updates = append(p.Updates, deletes(grant(g))...)
		}
	}
	if exists && len(p.Updates) > 0 {
		p.Status = authz.StatusUpdated
	}
	return p
}

func (w *world) planResource(r authz.Record) authz.RecordPlan {
	oid := r.TenantID + "/" + r.Resource.ID
	p := authz.RecordPlan{Conditions: []authz.Condition{parent(typeTenant, r.TenantID)}}
	owner := relTo(r.Resource.Type, oid, relOwner, r.Owner)
	var rs *resourceState
	if t := w.liveTenant(r.TenantID); t != nil {
		rs = t.resources[r.Resource.Type+"\x00"+r.Resource.ID]
	}
	if slices.Equal(rs.ownerList(), []string{r.Owner.String()}) && rs.exists {
		p.Status = authz.StatusUnchanged
		return p
	}
	p.Status = authz.StatusUpdated
	if rs == nil || !rs.exists {
		p.Status = authz.StatusCreated
	}
	p.Updates = touches(authz.Relationship{ResourceType: r.Resource.Type, ResourceID: oid, Relation: relTenant, SubjectType: typeTenant, SubjectID: r.TenantID}, owner)
	// As PutResource: conditioned on the owners read (or on there being
	// none), so that concurrent writes end with one owner.
	if len(rs.ownerList()) == 0 {
		p.Conditions = append(p.Conditions, none(r.Resource.Type, oid, relOwner))
	}
	for _, o := range rs.ownerList() {
		s, err := authz.ParseSubject("owner_id", o)
		if err != nil {
			continue
		}
		was := relTo(r.Resource.Type, oid, relOwner, s)
		p.Conditions = append(p.Conditions, still(was))
		if o != r.Owner.String() {
			p.Updates = append(p.Updates, deletes(was)...)
		}
	}
	return p
}

// ownerList is the owners read; none for a resource never seen.
func (rs *resourceState) ownerList() []string {
	if rs == nil {
		return nil
	}
	return rs.owners
}

// Records lists the world as records, in export order, ids sorted.
func (w *world) Records() ([]authz.Record, int) {
	unexpressed := w.unexpressed
	var out []authz.Record
	subject := func(s string) authz.Subject {
		sub, _ := authz.ParseSubject("user_id", s) // read back from relationships authzd wrote
		return sub
	}
	for _, p := range sortedKeys(w.partners) {
		out = append(out, authz.Record{Kind: authz.KindPartner, PartnerID: p})
	}
	for _, u := range sortedKeys(w.superAdmins) {
		out = append(out, authz.Record{Kind: authz.KindSuperAdmin, User: subject(u)})
	}
	for _, p := range sortedKeys(w.partnerAdmins) {
		for _, u := range sortedKeys(w.partnerAdmins[p]) {
			if !w.partners[p] {
				unexpressed++
				continue
			}
			out = append(out, authz.Record{Kind: authz.KindPartnerAdmin, PartnerID: p, User: subject(u)})
		}
	}
	var tenants, roles, members, resources []authz.Record
	for _, tid := range sortedKeys(w.tenants) {
		t := w.tenants[tid]
		if !t.exists || len(t.partners) != 1 {
			unexpressed += len(t.rels)
			continue
		}
		tenants = append(tenants, authz.Record{Kind: authz.KindTenant, TenantID: tid, PartnerID: t.partners[0]})
		for _, rl := range authz.TenantRoles {
			for _, u := range sortedKeys(t.members[rl]) {
				members = append(members, authz.Record{Kind: authz.KindMember, TenantID: tid, RoleID: rl, User: subject(u)})
			}
		}
		for _, rid := range sortedKeys(t.roles) {
			role := t.roles[rid]
			if !role.exists {
				unexpressed += len(role.grants) + len(role.members)
				continue
			}
			keys := make([]authz.Key, 0, len(role.grants))
			for _, g := range role.grants {
				k, err := authz.KeyFromRelation(strings.TrimPrefix(g, authz.GrantPrefix))
				if err != nil {
					unexpressed++
					continue
				}
				keys = append(keys, k)
			}
			slices.SortFunc(keys, func(a, b authz.Key) int { return cmp.Compare(a.String(), b.String()) })
			roles = append(roles, authz.Record{Kind: authz.KindRole, TenantID: tid, RoleID: rid, Keys: keys})
			for _, u := range sortedKeys(role.members) {
				members = append(members, authz.Record{Kind: authz.KindMember, TenantID: tid, RoleID: rid, User: subject(u)})
			}
		}
		for _, key := range sortedKeys(t.resources) {
			rs := t.resources[key]
			typ, id, _ := strings.Cut(key, "\x00")
			if !rs.exists || len(rs.owners) != 1 {
				unexpressed += len(rs.owners)
				if rs.exists {
					unexpressed++
				}
				continue
			}
			resources = append(resources, authz.Record{Kind: authz.KindResource, TenantID: tid,
				Resource: authz.Resource{Type: typ, ID: id}, Owner: subject(rs.owners[0])})
		}
	}
	// Members sort by tenant, then role id, then user, built-in and custom
	// roles alike.
	slices.SortStableFunc(members, func(a, b authz.Record) int {
		return cmp.Or(cmp.Compare(a.TenantID, b.TenantID), cmp.Compare(a.RoleID, b.RoleID), cmp.Compare(a.User.String(), b.User.String()))
	})
	out = append(out, tenants...)
	out = append(out, roles...)
	out = append(out, members...)
	return append(out, resources...), unexpressed
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
