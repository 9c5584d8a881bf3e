package spicedb

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// decisionCache holds SpiceDB's answers to checks, grouped by tenant, and is
// kept current by SpiceDB's Watch stream (see watcher). SpiceDB stays the only
// source of truth: an entry is only ever an answer SpiceDB gave at exactly the
// cache's frontier, and it is dropped as soon as the stream delivers any change
// that could alter it.
//
// The frontier is the revision through which the stream has delivered every
// change (its last changes_through), and every entry is correct at it: an entry
// is filled from an answer at exactly the frontier observed when its miss began
// (at_exact_snapshot), and stored only if no change to its tenant was applied
// since; every change applied afterwards drops the tenant's entries. Our model
// makes the dependency simple: every relationship of a tenant lives on an
// object whose id is the tenant id or starts with "<tenant>/"; partner and
// platform relationships (which can reach any tenant) and schema changes drop
// everything.
//
// While the stream is down the cache is not ready: it answers nothing and
// stores nothing, and every check goes to SpiceDB.
type decisionCache struct {
	max int // entries bound

	mu       sync.RWMutex
	ready    bool
	frontier string                     // zed token: every change through it has been applied
	epoch    uint64                     // bumped by every drop of everything
	gens     map[string]uint64          // tenant -> changes applied in this epoch
	tenants  map[string]map[string]bool // tenant -> decision key -> allowed
	// subjects are the subjects each tenant holds answers for: a miss for a
	// subject already seen prefetches its other keys (see Graph.cached).
	subjects map[string]map[string]bool
	entries  int
	// delivered maps the zed tokens of authzd's own writes to true once the
	// stream has delivered them (see watcher.noteWrite): a check carrying such
	// a token may be answered here, because the frontier is provably past it.
	delivered map[string]bool
	pending   map[string]pendingWrite // write id -> its zed token, until the stream delivers it
	// early holds write ids the stream delivered before the writer reported
	// its token (the stream can be faster than the write's own answer).
	early map[string]bool
	// uncovered are write ids delivered since the last checkpoint.
	uncovered []string
	// paused stops fills between a batch's first change and its checkpoint.
	paused bool
	// latest is the changes_through of the last response: while fills are
	// paused, misses are asked at least as fresh as it (not stored).
	latest string
	// lastApply is when the stream last moved the frontier (or started).
	lastApply time.Time
	// observeLag, when set, is told how long the stream took to deliver one
	// of authzd's own writes after SpiceDB answered it.
	observeLag func(time.Duration)

	hits, misses, invalidations, resyncs, fillsDropped, verified, mismatches atomic.Uint64
}

// maxTrackedWrites bounds the write tokens remembered for token-carrying checks.
const maxTrackedWrites = 4096

func newDecisionCache(maxEntries int) *decisionCache {
	if maxEntries <= 0 {
		maxEntries = 1 << 20
	}
	return &decisionCache{max: maxEntries, gens: map[string]uint64{}, tenants: map[string]map[string]bool{},
		subjects:  map[string]map[string]bool{},
		delivered: map[string]bool{}, pending: map[string]pendingWrite{}, early: map[string]bool{}}
}

type pendingWrite struct {
	token string
	at    time.Time
}

// decisionKey names one question within a tenant. Ids cannot contain NUL
// (authz.ValidateID), so the key is unambiguous.
func decisionKey(objType, objID, perm, subjType, subjID string) string {
	return objType + "\x00" + objID + "\x00" + perm + "\x00" + subjType + "\x00" + subjID
}

// subjectOf is the subject part ("type\x00id") of a decision key.
func subjectOf(key string) string {
	i := strings.LastIndexByte(key, 0)
	if i < 0 {
		return key
	}
	j := strings.LastIndexByte(key[:i], 0)
	return key[j+1:]
}

// knows reports whether the cache holds any answer for subject in tenant.
func (c *decisionCache) knows(tenant, subject string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.subjects[tenant][subject]
}

// tenantOf returns the tenant whose entries a relationship on (objType, objID)
// can affect, or "" when it can affect any tenant (partner, platform).
func tenantOf(objType, objID string) string {
	if objType == typeTenant {
		return objID
	}
	if i := strings.IndexByte(objID, '/'); i > 0 {
		return objID[:i]
	}
	return ""
}

// lookup answers from the cache. token, when set, is the caller's consistency
// token: the cache may answer only if the stream has delivered it.
func (c *decisionCache) lookup(tenant, key, token string) (allowed bool, frontier string, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.ready || (token != "" && !c.delivered[token]) {
		return false, "", false
	}
	allowed, ok = c.tenants[tenant][key]
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return allowed, c.frontier, ok
}

// hasDelivered reports whether the stream has delivered the write of token.
func (c *decisionCache) hasDelivered(token string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ready && c.delivered[token]
}

// fill is a miss in progress: what the cache looked like when it began.
type fill struct {
	tenant   string
	frontier string
	epoch    uint64
	gen      uint64
}

// begin starts a fill for tenant; ok is false when the cache is not ready or
// its fills are paused. latest, when set, is the revision a miss that cannot
// fill must be answered at least as fresh as (so that no answer is older than
// a change the cache has already applied).
func (c *decisionCache) begin(tenant string) (f fill, ok bool, latest string) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.ready {
		return fill{}, false, ""
	}
	if c.paused {
		return fill{}, false, c.latest
	}
	return fill{tenant: tenant, frontier: c.frontier, epoch: c.epoch, gen: c.gens[tenant]}, true, ""
}

// store keeps answers SpiceDB gave at exactly f.frontier, unless anything that
// could change them was applied since f began.
func (c *decisionCache) store(f fill, answers map[string]bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready || c.epoch != f.epoch || c.gens[f.tenant] != f.gen {
		c.fillsDropped.Add(1)
		return false
	}
	m := c.tenants[f.tenant]
	if m == nil {
		m = make(map[string]bool, len(answers))
		c.tenants[f.tenant] = m
	}
	subjects := c.subjects[f.tenant]
	if subjects == nil {
		subjects = map[string]bool{}
		c.subjects[f.tenant] = subjects
	}
	for k, v := range answers {
		if _, had := m[k]; !had {
			c.entries++
		}
		m[k] = v
		subjects[subjectOf(k)] = true
	}
	// Over the bound: drop other tenants (map order is random enough) until it fits.
	for t, tm := range c.tenants {
		if c.entries <= c.max {
			break
		}
		if t != f.tenant {
			c.entries -= len(tm)
			delete(c.tenants, t)
			delete(c.subjects, t)
		}
	}
	return true
}

// pendingIDs lists the writes still waiting for the stream.
func (c *decisionCache) pendingIDs() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ids := make([]string, 0, len(c.pending))
	for id := range c.pending {
		ids = append(ids, id)
	}
	return ids
}

// start makes the cache ready at frontier, empty. before are writes that SpiceDB
// answered before frontier was read: a stream starting at frontier will not
// deliver them, and the frontier is past them.
func (c *decisionCache) start(frontier string, before []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropAllLocked()
	for _, id := range before {
		if p, ok := c.pending[id]; ok {
			delete(c.pending, id)
			c.deliveredLocked(p.token)
		}
	}
	c.ready, c.frontier, c.latest, c.lastApply = true, frontier, frontier, time.Now()
	c.paused, c.uncovered = false, c.uncovered[:0]
	c.resyncs.Add(1)
}

// stop empties the cache and makes it answer nothing until the next start.
func (c *decisionCache) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropAllLocked()
	c.ready = false
}

func (c *decisionCache) dropAllLocked() {
	c.epoch++
	clear(c.gens)
	clear(c.tenants)
	clear(c.subjects)
	c.entries = 0
}

// change is what one Watch response tells the cache.
type change struct {
	tenants    []string // tenants whose relationships changed
	global     bool     // a change that can reach any tenant (partner, platform, schema)
	writeIDs   []string // authzd write ids carried in the transaction metadata
	checkpoint bool     // every change through `through` has been delivered
	through    string   // changes_through
}

// apply drops what the change can affect, atomically with moving the frontier.
//
// Only checkpoints move the frontier. A single transaction's changes_through is
// that transaction's own revision, which on Postgres (snapshot revisions) need
// not include another transaction the stream delivered just before it; filling
// at it could store an answer that misses a change already applied, so fills
// pause from the first change of a batch until its checkpoint. Answers already
// held stay: every change delivered so far has been applied to them. Write
// tokens count as delivered only once a checkpoint covers them, too.
func (c *decisionCache) apply(ch change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch.global {
		c.dropAllLocked()
		c.invalidations.Add(1)
	} else {
		for _, t := range ch.tenants {
			c.gens[t]++
			c.entries -= len(c.tenants[t])
			delete(c.tenants, t)
			delete(c.subjects, t)
			c.invalidations.Add(1)
		}
	}
	c.uncovered = append(c.uncovered, ch.writeIDs...)
	if ch.through != "" {
		c.latest = ch.through
	}
	if !ch.checkpoint {
		if len(ch.tenants) > 0 || ch.global || len(ch.writeIDs) > 0 {
			c.paused = true
		}
		return
	}
	now := time.Now()
	for _, id := range c.uncovered {
		p, ok := c.pending[id]
		if !ok {
			// The stream was faster than the write's own answer (see wrote).
			if len(c.early) >= maxTrackedWrites {
				clear(c.early)
			}
			c.early[id] = true
			continue
		}
		delete(c.pending, id)
		c.deliveredLocked(p.token)
		if c.observeLag != nil {
			c.observeLag(now.Sub(p.at))
		}
	}
	c.uncovered = c.uncovered[:0]
	if ch.through != "" {
		c.frontier = ch.through
	}
	c.paused = false
	c.lastApply = now
}

func (c *decisionCache) deliveredLocked(token string) {
	if len(c.delivered) >= maxTrackedWrites {
		clear(c.delivered)
	}
	c.delivered[token] = true
}

// wrote records the zed token of one of authzd's writes, tagged with id in its
// transaction metadata, so that the stream's delivery of id marks the token.
func (c *decisionCache) wrote(id, token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.early[id] {
		delete(c.early, id)
		c.deliveredLocked(token)
		if c.observeLag != nil {
			c.observeLag(0)
		}
		return
	}
	if len(c.pending) >= maxTrackedWrites {
		clear(c.pending)
	}
	c.pending[id] = pendingWrite{token: token, at: time.Now()}
}

// dropTenant forgets a tenant's entries (after a verification mismatch).
func (c *decisionCache) dropTenant(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gens[tenant]++
	c.entries -= len(c.tenants[tenant])
	delete(c.tenants, tenant)
	delete(c.subjects, tenant)
}

// CacheStats is the decision cache's state for metrics.
type CacheStats struct {
	Enabled, Ready                                     bool
	Entries                                            int
	FrontierAge                                        time.Duration // since the stream last moved the frontier
	Hits, Misses, Invalidations, Resyncs, FillsDropped uint64
	Verified, Mismatches                               uint64
}

func (c *decisionCache) stats() CacheStats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := CacheStats{Enabled: true, Ready: c.ready, Entries: c.entries, Hits: c.hits.Load(), Misses: c.misses.Load(),
		Invalidations: c.invalidations.Load(), Resyncs: c.resyncs.Load(), FillsDropped: c.fillsDropped.Load(),
		Verified: c.verified.Load(), Mismatches: c.mismatches.Load()}
	if c.ready {
		s.FrontierAge = time.Since(c.lastApply)
	}
	return s
}
