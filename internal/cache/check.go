package cache

import (
	"context"
	"errors"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// This file is where a check is decided: from the cache (a hit), or, on a
// miss, by the mirror or by SpiceDB at a barrier revision covering every
// change the stream has delivered for the tenant, the answer then stored
// unless a change to the tenant arrived meanwhile. A check the cache cannot
// take (not ready, a consistency token the stream has not delivered) goes to
// SpiceDB as it would without a cache. Any error fails the check: never a yes.

// Check answers one check.
func (c *Cache) Check(ctx context.Context, ch authz.Check) (authz.Decision, error) {
	q, err := c.up.Question(ch)
	if err != nil {
		return authz.Decision{}, err
	}
	if d, handled, err := c.cached(ctx, ch.TenantID, q, ch.ConsistencyToken); handled {
		return d, err
	}
	return c.up.Check(ctx, ch)
}

// CheckBulk answers several checks, in order; a failed item carries its
// error in Decision.Err.
func (c *Cache) CheckBulk(ctx context.Context, checks []authz.Check) ([]authz.Decision, error) {
	qs, token, err := c.up.Questions(checks)
	if err != nil {
		return nil, err
	}
	if ds, handled, err := c.cachedBulk(ctx, checks, qs, token); handled {
		return ds, err
	}
	return c.up.CheckBulk(ctx, checks)
}

// barrierWait bounds how long a miss waits for a barrier before it goes to
// SpiceDB the way it would without a cache.
const barrierWait = 2 * time.Second

// fillRevision is the revision a fill reads at least as fresh as: the newest
// barrier if it covers need, else the next one. ok is false when the cache
// stopped or no barrier came in time: the caller then asks SpiceDB as it
// would without a cache.
func (c *Cache) fillRevision(ctx context.Context, need uint64) (token string, ok bool) {
	var timeout <-chan time.Time
	for {
		token, moved, ok := c.state.barrierFor(need)
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
func (c *Cache) mirrorFailed(err error) {
	if errors.Is(err, errMirrorClosed) {
		return
	}
	c.state.mirrorErrors.Add(1)
	c.logger.Debug("the decision cache's mirror could not answer a miss; asking spicedb", "err", err)
}

// cached answers one check from the cache, filling it on a miss.
// handled is false when the cache cannot take the check (not ready, or a
// consistency token the stream has not delivered): the caller then asks
// SpiceDB as it would without a cache.
func (c *Cache) cached(ctx context.Context, tenant string, q authz.Question, token string) (d authz.Decision, handled bool, err error) {
	key := decisionKey(q)
	if allowed, rev, ok := c.state.lookup(tenant, key, token); ok {
		c.maybeVerify(tenant, q, allowed)
		return authz.Decision{Allowed: allowed, CheckedAt: rev, Source: authz.SourceCache}, true, nil
	}
	if token != "" && !c.state.hasDelivered(token) {
		return authz.Decision{}, false, nil
	}
	f, ok := c.state.begin(tenant)
	if !ok {
		return authz.Decision{}, false, nil
	}
	if m := c.state.mirrorFor(f.need); m != nil {
		// The mirror covers every change to the tenant the cache has seen: its
		// answer is as good as SpiceDB's at a barrier, without the walk's
		// datastore reads. If it fails (it closes with its stream), ask SpiceDB.
		d, err := m.check(ctx, q)
		if err == nil {
			c.state.mirrorFills.Add(1)
			c.state.store(f, d.CheckedAt, map[string]bool{key: d.Allowed})
			return d, true, nil
		}
		c.mirrorFailed(err)
	}
	at, ok := c.fillRevision(ctx, f.need)
	if !ok {
		return authz.Decision{}, false, nil
	}
	// One question per miss: no prefetch of the subject's other keys. Asking
	// every tenant key on a miss was measured to cost more than it saves:
	// each prefetch is a CheckBulkPermissions of every tenant permission, and
	// on the benchmark those calls took 150-200 ms against 7-9 ms for single
	// checks, making the cache slower than no cache (docs/decisions/0002). An
	// effective-permissions read asks every key in one call and fills them
	// all: that is the prefetch a caller can ask for.
	//
	// Concurrent misses that began in the same cache state share one call
	// (any of their barriers covers the state). The call is not bound to the
	// first caller's request: the others wait on it too.
	v, err, _ := c.fills.Do(f.key()+"\x00"+key, func() (any, error) {
		return c.fillFrom(context.WithoutCancel(ctx), f, at, q)
	})
	if err != nil {
		c.failed(err)
		return authz.Decision{}, true, err
	}
	return v.(authz.Decision), true, nil
}

// fillFrom asks SpiceDB at the barrier at and stores the answer (unless a
// change to the tenant arrived meanwhile), which it returns either way. An
// answer SpiceDB could not give is not stored, and its caller gets the error.
func (c *Cache) fillFrom(ctx context.Context, f fill, at string, q authz.Question) (authz.Decision, error) {
	d, err := c.up.CheckAt(ctx, at, q)
	if err != nil {
		return authz.Decision{}, err
	}
	if d.Err == nil {
		c.state.store(f, d.CheckedAt, map[string]bool{decisionKey(q): d.Allowed})
	}
	return d, nil
}

// cachedBulk answers a bulk check from the cache where it can; the misses go
// to the mirror or to SpiceDB in one call at a barrier and fill the cache.
// handled is false when the cache cannot take the request.
func (c *Cache) cachedBulk(ctx context.Context, checks []authz.Check, qs []authz.Question, token string) (_ []authz.Decision, handled bool, _ error) {
	out := make([]authz.Decision, len(qs))
	var missing []int
	for i, q := range qs {
		allowed, rev, ok := c.state.lookup(checks[i].TenantID, decisionKey(q), token)
		if !ok {
			missing = append(missing, i)
			continue
		}
		c.maybeVerify(checks[i].TenantID, q, allowed)
		out[i] = authz.Decision{Allowed: allowed, CheckedAt: rev, Source: authz.SourceCache}
	}
	if len(missing) == 0 {
		return out, true, nil
	}
	if token != "" && !c.state.hasDelivered(token) {
		return nil, false, nil
	}
	fills, need, ok := c.beginAll(checks, missing)
	if !ok {
		return nil, false, nil // not ready: ask SpiceDB as usual
	}
	asked := make([]authz.Question, len(missing))
	for j, i := range missing {
		asked[j] = qs[i]
	}
	ds, handled, err := c.answer(ctx, need, asked)
	if !handled || err != nil {
		return nil, handled, err
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
		byTenant[t][decisionKey(asked[j])] = d.Allowed
	}
	for t, answers := range byTenant {
		c.state.store(fills[t], rev, answers)
	}
	return out, true, nil
}

// beginAll begins one fill per tenant of the missing checks, all before the
// call that answers them, which reads at a barrier covering need, the
// greatest of theirs. ok is false when the cache is not ready.
func (c *Cache) beginAll(checks []authz.Check, missing []int) (fills map[string]fill, need uint64, ok bool) {
	fills = map[string]fill{}
	for _, i := range missing {
		t := checks[i].TenantID
		if _, ok := fills[t]; ok {
			continue
		}
		f, ok := c.state.begin(t)
		if !ok {
			return nil, 0, false
		}
		fills[t] = f
		need = max(need, f.need)
	}
	return fills, need, true
}

// answer answers the missing questions of a bulk check on the mirror when
// it covers need, else at a barrier covering need. handled is false when no
// barrier came in time (or the cache stopped).
func (c *Cache) answer(ctx context.Context, need uint64, qs []authz.Question) (_ []authz.Decision, handled bool, _ error) {
	if m := c.state.mirrorFor(need); m != nil {
		ds, err := m.checkBulk(ctx, qs)
		if err == nil {
			c.state.mirrorFills.Add(uint64(len(qs)))
			return ds, true, nil
		}
		c.mirrorFailed(err) // and ask SpiceDB
	}
	at, ok := c.fillRevision(ctx, need)
	if !ok {
		return nil, false, nil
	}
	ds, err := c.up.CheckBulkAt(ctx, at, qs)
	if err != nil {
		c.failed(err)
		return nil, true, err
	}
	if len(ds) != len(qs) {
		return nil, true, authz.Errorf(authz.EINTERNAL, "spicedb answered %d of %d bulk items", len(ds), len(qs))
	}
	return ds, true, nil
}

// failed resyncs the cache when SpiceDB could not answer one of its misses:
// a cache must not go on answering for a SpiceDB that cannot.
func (c *Cache) failed(err error) {
	if err != nil && authz.ErrorCode(err) == authz.EUNAVAILABLE {
		c.watcher.reset()
	}
}
