package spicedb

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// head asks for an answer at the head revision. Nothing that must include a
// write committed before the request reads at it (see fresh); the cache's
// verifier does, since it tolerates an answer a little older or newer.
func head() *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
}

// barrierObject is where barrier writes delete and resume marks write: a
// tenant whose id contains '/', which authz.ValidateID refuses, so no tenant
// authzd provisions has it (and FollowChanges leaves its changes out).
const barrierObject = "authzd/barrier"

// barrier sends a write that changes nothing and returns its revision, which
// includes every transaction committed before the call (see decisionCache).
// It is a DeleteRelationships of a tenant object no caller can name.
func (g *Graph) barrier(ctx context.Context) (string, error) {
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

// resumeMarkPrefix starts the write id of every resume mark (see mark).
const resumeMarkPrefix = "authzd-resume/"

// mark writes a relationship on the barrier object, tagged with id in its
// transaction metadata, so that a Watch stream delivers it (a barrier, which
// changes nothing, never appears on a stream): a resumed stream has caught up
// with everything committed before the call once it has delivered the mark.
// A barrier sent first deletes the marks of earlier resumes (and the next
// barrier this one), so they do not pile up; each subject is new, so the
// mark always changes something.
func (g *Graph) mark(ctx context.Context, id string) error {
	if _, err := g.barrier(ctx); err != nil {
		return err
	}
	ctx, cancel := g.call(ctx)
	defer cancel()
	_, err := g.perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{
		Updates: []*v1.RelationshipUpdate{{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: typeTenant, ObjectId: barrierObject},
			Relation: "tenant_viewer",
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
// call: at least as fresh as a new barrier. Fully consistent is not that (see
// decisionCache): measured in TestBarrierIncludesEarlierWrites, a fully
// consistent read sent after a write returned missed it in about one case in
// ten while other fully consistent reads were in flight.
func (g *Graph) fresh(ctx context.Context) (*v1.Consistency, error) {
	token, err := g.barrier(ctx)
	if err != nil {
		return nil, err
	}
	return consistency(token), nil
}

// barrierWait bounds how long a miss waits for a barrier before it goes to
// SpiceDB the way it would without a cache.
const barrierWait = 2 * time.Second

// fillRevision is the revision a fill reads at least as fresh as: the newest
// barrier if it covers need, else the next one. ok is false when the cache
// stopped or no barrier came in time: the caller then asks SpiceDB as it
// would without a cache.
func (g *Graph) fillRevision(ctx context.Context, need uint64) (token string, ok bool) {
	var timeout <-chan time.Time
	for {
		token, moved, ok := g.cache.barrierFor(need)
		if !ok || token != "" {
			return token, ok
		}
		if timeout == nil {
			t := time.NewTimer(barrierWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-moved:
		case <-timeout:
			return "", false
		case <-ctx.Done():
			return "", false
		}
	}
}

// mirrorFailed counts a check the mirror could not answer (the caller asks
// SpiceDB instead). A mirror closing under a check is expected; anything else
// (a read its index does not serve, an engine error) is counted and logged.
func (g *Graph) mirrorFailed(err error) {
	if errors.Is(err, errMirrorClosed) {
		return
	}
	g.cache.mirrorErrors.Add(1)
	g.logger.Debug("the decision cache's mirror could not answer a miss; asking spicedb", "err", err)
}

func itemKey(it *v1.CheckBulkPermissionsRequestItem) string {
	s := it.GetSubject().GetObject()
	return decisionKey(it.GetResource().GetObjectType(), it.GetResource().GetObjectId(), it.GetPermission(), s.GetObjectType(), s.GetObjectId())
}

// cached answers one check from the decision cache, filling it on a miss.
// handled is false when the cache cannot take the check (not ready, or a
// consistency token the stream has not delivered): the caller then asks
// SpiceDB as it would without a cache.
func (g *Graph) cached(ctx context.Context, tenant string, it *v1.CheckBulkPermissionsRequestItem, token string) (d authz.Decision, handled bool, err error) {
	key := itemKey(it)
	if allowed, rev, ok := g.cache.lookup(tenant, key, token); ok {
		g.maybeVerify(tenant, it, allowed)
		return authz.Decision{Allowed: allowed, CheckedAt: rev, Source: authz.SourceCache}, true, nil
	}
	if token != "" && !g.cache.hasDelivered(token) {
		return authz.Decision{}, false, nil
	}
	f, ok := g.cache.begin(tenant)
	if !ok {
		return authz.Decision{}, false, nil
	}
	if m := g.cache.mirrorFor(f.need); m != nil {
		// The mirror covers every change to the tenant the cache has seen: its
		// answer is as good as SpiceDB's at a barrier, without the walk's
		// datastore reads. If it fails (it closes with its stream), ask SpiceDB.
		d, err := m.check(ctx, it)
		if err == nil {
			g.cache.mirrorFills.Add(1)
			g.cache.store(f, d.CheckedAt, map[string]bool{key: d.Allowed})
			return d, true, nil
		}
		g.mirrorFailed(err)
	}
	at, ok := g.fillRevision(ctx, f.need)
	if !ok {
		return authz.Decision{}, false, nil
	}
	// One question per miss: no prefetch of the subject's other keys. Asking
	// every tenant key on a miss was measured to cost more
	// than it saves: each prefetch is a CheckBulkPermissions of every tenant
	// permission, and on the benchmark those calls took 150-200 ms against
	// 7-9 ms for single checks, making the cache slower than no cache
	// (docs/decisions/0002). An effective-permissions read asks every key in
	// one call and fills them all: that is the prefetch a caller can ask for.
	items := []*v1.CheckBulkPermissionsRequestItem{it}
	// Concurrent misses that began in the same cache state share one call
	// (any of their barriers covers the state). The call is not bound to the
	// first caller's request: the others wait on it too.
	v, err, _ := g.fills.Do(f.key()+"\x00"+key, func() (any, error) {
		return g.fillFrom(context.WithoutCancel(ctx), f, at, items)
	})
	if err != nil {
		g.cacheFailed(err)
		return authz.Decision{}, true, err
	}
	ds := v.(map[string]authz.Decision)
	d, ok = ds[key]
	if !ok {
		return authz.Decision{}, true, authz.Errorf(authz.EINTERNAL, "decision cache fill lacks the question asked")
	}
	return d, true, nil
}

// fillFrom asks SpiceDB at the barrier at and stores the
// answers (unless a change to the tenant arrived meanwhile). Answers are
// returned by decision key either way.
func (g *Graph) fillFrom(ctx context.Context, f fill, at string, items []*v1.CheckBulkPermissionsRequestItem) (map[string]authz.Decision, error) {
	if len(items) == 1 && g.checks != nil {
		// A single question shares the coalescer's calls with other fills.
		d, err := g.checks.checkAt(ctx, items[0], at)
		if err != nil {
			return nil, err
		}
		k := itemKey(items[0])
		g.cache.store(f, d.CheckedAt, map[string]bool{k: d.Allowed})
		return map[string]authz.Decision{k: d}, nil
	}
	cctx, cancel := g.call(ctx)
	defer cancel()
	resp, err := g.perms.CheckBulkPermissions(cctx, &v1.CheckBulkPermissionsRequest{Consistency: atBarrier(at), Items: items})
	if err != nil {
		return nil, mapError(err, "check")
	}
	ds, err := bulkDecisions(resp, items)
	if err != nil {
		return nil, err
	}
	out := make(map[string]authz.Decision, len(items))
	answers := make(map[string]bool, len(items))
	for i, d := range ds {
		k := itemKey(items[i])
		out[k] = d
		if d.Err == nil { // an item SpiceDB could not answer is not stored, and its caller gets the error
			answers[k] = d.Allowed
		}
	}
	g.cache.store(f, resp.GetCheckedAt().GetToken(), answers)
	return out, nil
}

// cachedBulk answers a bulk check from the cache where it can; the misses go
// to SpiceDB in one call at the head revision and fill the cache. handled is
// false when the cache cannot take the request.
func (g *Graph) cachedBulk(ctx context.Context, checks []authz.Check, items []*v1.CheckBulkPermissionsRequestItem, token string) (_ []authz.Decision, handled bool, _ error) {
	out := make([]authz.Decision, len(items))
	var missing []int
	for i, it := range items {
		allowed, rev, ok := g.cache.lookup(checks[i].TenantID, itemKey(it), token)
		if !ok {
			missing = append(missing, i)
			continue
		}
		g.maybeVerify(checks[i].TenantID, it, allowed)
		out[i] = authz.Decision{Allowed: allowed, CheckedAt: rev, Source: authz.SourceCache}
	}
	if len(missing) == 0 {
		return out, true, nil
	}
	if token != "" && !g.cache.hasDelivered(token) {
		return nil, false, nil
	}
	// One fill per tenant, all begun before the call, which reads at a
	// barrier covering all of them.
	fills := map[string]fill{}
	var need uint64
	for _, i := range missing {
		t := checks[i].TenantID
		if _, ok := fills[t]; ok {
			continue
		}
		f, ok := g.cache.begin(t)
		if !ok {
			return nil, false, nil // not ready: ask SpiceDB as usual
		}
		fills[t] = f
		need = max(need, f.need)
	}
	asked := make([]*v1.CheckBulkPermissionsRequestItem, len(missing))
	for j, i := range missing {
		asked[j] = items[i]
	}
	var ds []authz.Decision
	if m := g.cache.mirrorFor(need); m != nil {
		var err error
		if ds, err = m.checkBulk(ctx, asked); err == nil {
			g.cache.mirrorFills.Add(uint64(len(asked)))
		} else {
			g.mirrorFailed(err) // and ask SpiceDB
		}
	}
	if ds == nil {
		at, ok := g.fillRevision(ctx, need)
		if !ok {
			return nil, false, nil
		}
		cctx, cancel := g.call(ctx)
		defer cancel()
		resp, err := g.perms.CheckBulkPermissions(cctx, &v1.CheckBulkPermissionsRequest{Consistency: atBarrier(at), Items: asked})
		if err != nil {
			err = mapError(err, "check")
			g.cacheFailed(err)
			return nil, true, err
		}
		if ds, err = bulkDecisions(resp, asked); err != nil {
			return nil, true, err
		}
	}
	byTenant := map[string]map[string]bool{}
	rev := ""
	for j, i := range missing {
		d := ds[j]
		out[i] = d
		if d.Err != nil {
			continue
		}
		rev = d.CheckedAt
		t := checks[i].TenantID
		if byTenant[t] == nil {
			byTenant[t] = map[string]bool{}
		}
		byTenant[t][itemKey(asked[j])] = d.Allowed
	}
	for t, answers := range byTenant {
		g.cache.store(fills[t], rev, answers)
	}
	return out, true, nil
}

// cacheFailed resyncs the cache when SpiceDB could not answer one of its
// misses: a cache must not go on answering for a SpiceDB that cannot.
func (g *Graph) cacheFailed(err error) {
	if err != nil && authz.ErrorCode(err) == authz.EUNAVAILABLE && g.watcher != nil {
		g.watcher.reset()
	}
}

// verifyRequest is a cache answer to re-check against SpiceDB.
type verifyRequest struct {
	tenant     string
	item       *v1.CheckBulkPermissionsRequestItem
	allowed    bool
	epoch, gen uint64 // the tenant's change counter when the answer was given
}

// maybeVerify samples cache answers (AUTHZ_CACHE_VERIFY_RATE) for re-checking
// in the background.
func (g *Graph) maybeVerify(tenant string, it *v1.CheckBulkPermissionsRequestItem, allowed bool) {
	if g.verify == nil || rand.Float64() >= g.verifyRate {
		return
	}
	epoch, gen := g.cache.gen(tenant)
	select {
	case g.verify <- verifyRequest{tenant: tenant, item: it, allowed: allowed, epoch: epoch, gen: gen}:
	default: // the verifier is busy; skipping a sample is fine
	}
}

// verifyGrace is how long the verifier lets the Watch stream deliver a change
// before it calls a difference a mismatch: a write SpiceDB has committed but
// the stream has not delivered yet legitimately makes the cache's answer older.
const verifyGrace = time.Second

// verifier re-checks sampled cache answers at the head revision. A difference
// that persists after verifyGrace with no change to the tenant delivered
// meanwhile is a mismatch: counted, logged, and the tenant's entries dropped.
func (g *Graph) verifier(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case v := <-g.verify:
			cctx, cancel := g.call(ctx)
			resp, err := g.perms.CheckPermission(cctx, &v1.CheckPermissionRequest{Consistency: head(),
				Resource: v.item.Resource, Permission: v.item.Permission, Subject: v.item.Subject})
			cancel()
			if err != nil {
				continue // inconclusive
			}
			g.cache.verified.Add(1)
			got := resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
			if got == v.allowed {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(verifyGrace):
			}
			if epoch, gen := g.cache.gen(v.tenant); epoch != v.epoch || gen != v.gen {
				continue // a change arrived: the cache's answer was merely older than SpiceDB's
			}
			g.cache.mismatches.Add(1)
			g.cache.dropTenant(v.tenant)
			s := v.item.GetSubject().GetObject()
			g.logger.Error("decision cache answer differs from spicedb; tenant entries dropped", "tenant", v.tenant,
				"object", v.item.GetResource().GetObjectType()+":"+v.item.GetResource().GetObjectId(),
				"permission", v.item.GetPermission(), "subject", s.GetObjectType()+":"+s.GetObjectId(),
				"cached", v.allowed, "spicedb", got)
		}
	}
}
