package spicedb

import (
	"context"
	"math/rand/v2"
	"sort"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// exactly asks for an answer at exactly the revision of token.
func exactly(token string) *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: token}}}
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
	if allowed, frontier, ok := g.cache.lookup(tenant, key, token); ok {
		g.maybeVerify(tenant, it, allowed, frontier)
		return authz.Decision{Allowed: allowed, CheckedAt: frontier, Source: authz.SourceCache}, true, nil
	}
	if token != "" && !g.cache.hasDelivered(token) {
		return authz.Decision{}, false, nil
	}
	f, ok, latest := g.cache.begin(tenant)
	if !ok {
		if latest == "" || token != "" {
			return authz.Decision{}, false, nil
		}
		// Fills are paused mid-batch: answer at least as fresh as the newest
		// change applied, without storing.
		d, err := g.checkOne(ctx, it, latest)
		g.cacheFailed(err)
		return d, true, err
	}
	items := []*v1.CheckBulkPermissionsRequestItem{it}
	if s := it.GetSubject().GetObject(); it.GetResource().GetObjectType() == typeTenant &&
		g.cache.knows(tenant, s.GetObjectType()+"\x00"+s.GetObjectId()) {
		// Prefetch: a subject seen before (a miss for its second key) gets all
		// its keys in this tenant with this one, so its next checks and its
		// effective permissions are hits. A first-time subject asks one key:
		// with many users asked once each, fetching all keys per miss costs
		// more than it saves (the 1,000-tenant benchmark measured that).
		items = g.tenantItems(it)
	}
	// Concurrent misses for the same subject and frontier share one call.
	// The call is not bound to the first caller's request: the others wait on it too.
	v, err, _ := g.fills.Do(f.frontier+"\x00"+fillKey(items), func() (any, error) {
		return g.fillFrom(context.WithoutCancel(ctx), f, items)
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

func fillKey(items []*v1.CheckBulkPermissionsRequestItem) string {
	if len(items) == 1 {
		return itemKey(items[0])
	}
	// A prefetch is named by its subject and tenant.
	s := items[0].GetSubject().GetObject()
	return "prefetch\x00" + items[0].GetResource().GetObjectId() + "\x00" + s.GetObjectType() + "\x00" + s.GetObjectId()
}

// tenantItems lists every tenant permission for the subject of it.
func (g *Graph) tenantItems(it *v1.CheckBulkPermissionsRequestItem) []*v1.CheckBulkPermissionsRequestItem {
	out := make([]*v1.CheckBulkPermissionsRequestItem, len(g.tenantPerms))
	for i, p := range g.tenantPerms {
		out[i] = &v1.CheckBulkPermissionsRequestItem{Resource: it.Resource, Permission: p, Subject: it.Subject}
	}
	return out
}

// fillFrom asks SpiceDB at exactly the fill's frontier and stores the answers
// (unless a change to the tenant arrived meanwhile). Answers are returned by
// decision key either way.
func (g *Graph) fillFrom(ctx context.Context, f fill, items []*v1.CheckBulkPermissionsRequestItem) (map[string]authz.Decision, error) {
	if len(items) == 1 && g.checks != nil {
		// A single question shares the coalescer's calls with other fills at
		// the same frontier.
		d, err := g.checks.checkAt(ctx, items[0], f.frontier)
		if err != nil {
			return nil, err
		}
		k := itemKey(items[0])
		g.cache.store(f, map[string]bool{k: d.Allowed})
		return map[string]authz.Decision{k: d}, nil
	}
	cctx, cancel := g.call(ctx)
	defer cancel()
	resp, err := g.perms.CheckBulkPermissions(cctx, &v1.CheckBulkPermissionsRequest{Consistency: exactly(f.frontier), Items: items})
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
		if d.Err != nil {
			continue // not stored, and the caller of this item gets the error
		}
		d.Source = authz.SourceSpiceDB
		k := itemKey(items[i])
		out[k], answers[k] = d, d.Allowed
	}
	for i, d := range ds {
		if d.Err != nil {
			out[itemKey(items[i])] = d
		}
	}
	g.cache.store(f, answers)
	return out, nil
}

// cachedBulk answers a bulk check from the cache where it can; the misses go
// to SpiceDB in one call at exactly the frontier and fill the cache. handled
// is false when the cache cannot take the request.
func (g *Graph) cachedBulk(ctx context.Context, checks []authz.Check, items []*v1.CheckBulkPermissionsRequestItem, token string) (_ []authz.Decision, handled bool, _ error) {
	out := make([]authz.Decision, len(items))
	var missing []int
	for i, it := range items {
		allowed, frontier, ok := g.cache.lookup(checks[i].TenantID, itemKey(it), token)
		if !ok {
			missing = append(missing, i)
			continue
		}
		g.maybeVerify(checks[i].TenantID, it, allowed, frontier)
		out[i] = authz.Decision{Allowed: allowed, CheckedAt: frontier, Source: authz.SourceCache}
	}
	if len(missing) == 0 {
		return out, true, nil
	}
	if token != "" && !g.cache.hasDelivered(token) {
		return nil, false, nil
	}
	// One fill per tenant, all begun before the call (at one frontier).
	fills := map[string]fill{}
	frontier, latest := "", ""
	for _, i := range missing {
		t := checks[i].TenantID
		if _, ok := fills[t]; ok {
			continue
		}
		f, ok, l := g.cache.begin(t)
		if !ok && (l == "" || token != "") {
			return nil, false, nil // not ready: ask SpiceDB as usual
		}
		if !ok || (frontier != "" && f.frontier != frontier) {
			// Paused mid-batch, or the frontier moved between tenants: answer
			// the misses at least as fresh as the newest change, unstored.
			fills, latest = nil, l
			if latest == "" {
				return nil, false, nil
			}
			break
		}
		fills[t], frontier = f, f.frontier
	}
	asked := make([]*v1.CheckBulkPermissionsRequestItem, len(missing))
	for j, i := range missing {
		asked[j] = items[i]
	}
	cons := exactly(frontier)
	if fills == nil {
		cons = consistency(latest)
	}
	cctx, cancel := g.call(ctx)
	defer cancel()
	resp, err := g.perms.CheckBulkPermissions(cctx, &v1.CheckBulkPermissionsRequest{Consistency: cons, Items: asked})
	if err != nil {
		err = mapError(err, "check")
		g.cacheFailed(err)
		return nil, true, err
	}
	ds, err := bulkDecisions(resp, asked)
	if err != nil {
		return nil, true, err
	}
	byTenant := map[string]map[string]bool{}
	for j, i := range missing {
		d := ds[j]
		d.Source = authz.SourceSpiceDB
		out[i] = d
		if d.Err != nil {
			continue
		}
		t := checks[i].TenantID
		if byTenant[t] == nil {
			byTenant[t] = map[string]bool{}
		}
		byTenant[t][itemKey(asked[j])] = d.Allowed
	}
	if fills != nil {
		for t, answers := range byTenant {
			g.cache.store(fills[t], answers)
		}
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
	tenant   string
	item     *v1.CheckBulkPermissionsRequestItem
	allowed  bool
	frontier string
}

// maybeVerify samples cache answers (AUTHZ_CACHE_VERIFY_RATE) for re-checking
// in the background at exactly the frontier they were answered at.
func (g *Graph) maybeVerify(tenant string, it *v1.CheckBulkPermissionsRequestItem, allowed bool, frontier string) {
	if g.verify == nil || rand.Float64() >= g.verifyRate {
		return
	}
	select {
	case g.verify <- verifyRequest{tenant: tenant, item: it, allowed: allowed, frontier: frontier}:
	default: // the verifier is busy; skipping a sample is fine
	}
}

// verifier re-checks sampled cache answers. A mismatch is counted, logged and
// drops the tenant's entries.
func (g *Graph) verifier(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case v := <-g.verify:
			cctx, cancel := g.call(ctx)
			resp, err := g.perms.CheckPermission(cctx, &v1.CheckPermissionRequest{Consistency: exactly(v.frontier),
				Resource: v.item.Resource, Permission: v.item.Permission, Subject: v.item.Subject})
			cancel()
			if err != nil {
				continue // inconclusive
			}
			g.cache.verified.Add(1)
			got := resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
			if got != v.allowed {
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
}

// tenantPermissionNames lists the tenant definition's permissions, sorted.
func (m *model) tenantPermissionNames() []string {
	out := make([]string, 0, len(m.tenant))
	for p := range m.tenant {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
