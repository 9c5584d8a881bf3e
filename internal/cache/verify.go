package cache

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// verifyRequest is a cache answer to re-check against SpiceDB.
type verifyRequest struct {
	tenant     string
	question   authz.Question
	allowed    bool
	epoch, gen uint64 // the tenant's change counter when the answer was given
}

// maybeVerify samples cache answers (AUTHZ_CACHE_VERIFY_RATE) for re-checking
// in the background.
func (c *Cache) maybeVerify(tenant string, q authz.Question, allowed bool) {
	if c.verify == nil || rand.Float64() >= c.verifyRate {
		return
	}
	epoch, gen := c.state.gen(tenant)
	select {
	case c.verify <- verifyRequest{tenant: tenant, question: q, allowed: allowed, epoch: epoch, gen: gen}:
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
func (c *Cache) verifier(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case v := <-c.verify:
			got, err := c.up.CheckHead(ctx, v.question)
			if err != nil {
				continue // inconclusive
			}
			c.state.verified.Add(1)
			if got == v.allowed {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(verifyGrace):
			}
			if epoch, gen := c.state.gen(v.tenant); epoch != v.epoch || gen != v.gen {
				continue // a change arrived: the cache's answer was merely older than SpiceDB's
			}
			c.state.mismatches.Add(1)
			c.state.dropTenant(v.tenant)
			q := v.question
			c.logger.Error("decision cache answer differs from spicedb; tenant entries dropped", "tenant", v.tenant,
				"object", q.ObjectType+":"+q.ObjectID, "permission", q.Permission, "subject", q.SubjectType+":"+q.SubjectID,
				"cached", v.allowed, "spicedb", got)
		}
	}
}

// gen is the tenant's change counter (for verification).
func (c *decisionCache) gen(tenant string) (uint64, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.epoch, c.gens[tenant]
}

// dropTenant forgets a tenant's entries (after a verification mismatch).
func (c *decisionCache) dropTenant(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.gens[tenant] = c.seq
	c.entries -= len(c.tenants[tenant])
	delete(c.tenants, tenant)
}
