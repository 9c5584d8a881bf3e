package cache

import (
	"github.com/scailabs/authzd/internal/authz"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// decisionCache holds SpiceDB's answers to checks, grouped by tenant, and is
// kept current by SpiceDB's Watch stream (see watcher). SpiceDB stays the only
// source of truth: an entry is an answer SpiceDB gave at a revision that
// includes every change the stream had applied to its tenant, and it is
// dropped as soon as the stream delivers any change that could alter it.
//
// Invariant: an entry reflects every change the stream had applied when its
// miss began, and no change applied since touched its tenant. Every applied
// change gets a sequence number. A miss records what its tenant needs (the
// number of the last change that can touch it), asks SpiceDB at exactly a
// barrier revision that covers that number, and stores the answer only if
// no change to the tenant was applied meanwhile.
//
// A barrier is the revision of a write (a DeleteRelationships that matches
// nothing) sent after the changes it covers were applied: a write's revision
// includes every transaction committed before it began, and a change the
// stream delivered is committed. Two kinds of revision that look as good are
// not: a Watch checkpoint's revision is a resume cursor built from one
// transaction's snapshot and need not include a transaction delivered earlier
// (the Docker-world concurrency test showed exactly that), and a fully
// consistent read need not be newer than the request either, because SpiceDB
// shares one in-flight HeadRevision query among concurrent callers (its
// singleflight datastore proxy), so a head read can be older than a change
// applied before it was asked (see docs/decisions/0002). One barrier serves
// every tenant that has not changed since, and every fill reads exactly at
// it (at_exact_snapshot), so all misses between two barriers share SpiceDB's
// dispatch cache (keyed by revision) for as long as the barrier serves, not
// only for one of SpiceDB's quantization windows. A barrier serves for at
// most barrierMaxAge, far inside SpiceDB's garbage-collection window (24 h
// by default), after which a snapshot read would be refused.
//
// Our model makes the dependency simple: every relationship of a tenant lives
// on an object whose id is the tenant id or starts with "<tenant>/"; partner
// and platform relationships (which can reach any tenant) and schema changes
// drop everything.
//
// While the stream is down the cache is not ready: it answers nothing and
// stores nothing, and every check goes to SpiceDB. A resumed stream (pause,
// resume) keeps the entries: it redelivers every change after the last
// checkpoint applied, and the cache answers again only once it has delivered
// a marker written after the break.
type decisionCache struct {
	max int // entries bound

	mu    sync.RWMutex
	ready bool
	epoch uint64 // bumped by every drop of everything
	// seq numbers the changes the stream applies (never reset); gens maps a
	// tenant to the number of its last change in this epoch, global is the
	// number of the last drop of everything (a partner, platform or schema
	// change, or a stream start).
	seq, global uint64
	gens        map[string]uint64
	// safe is the newest barrier: a revision that includes every change
	// numbered up to safe.seq. safeMoved is closed when safe moves (or the
	// cache stops); barrierWanted asks the watcher for a new barrier.
	safe          barrier
	safeMoved     chan struct{}
	barrierWanted chan struct{}
	tenants       map[string]map[string]entry // tenant -> decision key -> answer
	entries       int
	// dependents maps a tenant U to the tenants whose answers can depend on
	// U's relationships: T depends on U when a relationship on T's objects
	// names one of U's objects as its subject (tenant:T#grant_K@role:U/r#member,
	// bunker:T/b#tenant@tenant:U). authzd's API never writes such an edge,
	// but a write made straight to SpiceDB can, and then a change to U must
	// drop T as well. Edges are learnt from the stream and kept across
	// resyncs (they stay in SpiceDB); a delete keeps them (conservative).
	// Edges written before this process started are read once, at the first
	// stream's start barrier (crossTenantEdges). allDepend is set when an edge reaches beyond a
	// tenant (a platform or partner object naming a tenant's object) or there
	// are more than maxDependents edges: every tenant change then drops all.
	dependents map[string]map[string]bool
	nDepend    int
	allDepend  bool
	// delivered maps the zed tokens of authzd's own writes to true once the
	// stream has delivered them and a checkpoint followed (see wrote): a check
	// carrying such a token may be answered here, because every change up to
	// that write has been applied.
	delivered map[string]bool
	pending   map[string]pendingWrite // write id -> its zed token, until the stream delivers it
	// early holds write ids the stream delivered before the writer reported
	// its token (the stream can be faster than the write's own answer).
	early map[string]bool
	// uncovered are write ids delivered since the last checkpoint.
	uncovered []string
	// lastApply is when the stream last delivered anything (or started).
	lastApply time.Time
	// observeLag, when set, is told how long the stream took to deliver one
	// of authzd's own writes after SpiceDB answered it.
	observeLag func(time.Duration)
	// mirror answers fills in place of SpiceDB (nil when off or not loaded);
	// mirrorSeq is the number of the last change its state covers.
	mirror    *mirror
	mirrorSeq uint64
	// resumeID, while a resumed stream catches up, is the write id of the
	// marker written after the break (see resume): the cache answers again
	// at the checkpoint that follows the marker's delivery.
	resumeID string

	hits, misses, invalidations, resyncs, resumes, fillsDropped, verified, mismatches, barriers, mirrorFills, mirrorErrors, mirrorRebuilds atomic.Uint64
}

// entry is one answer and the revision SpiceDB computed it at.
type entry struct {
	allowed bool
	rev     string
}

// maxTrackedWrites bounds the write tokens remembered for token-carrying checks.
const maxTrackedWrites = 4096

// maxDependents bounds the cross-tenant edges remembered one by one.
const maxDependents = 10000

func newDecisionCache(maxEntries int) *decisionCache {
	if maxEntries <= 0 {
		maxEntries = 1 << 20
	}
	return &decisionCache{max: maxEntries, gens: map[string]uint64{}, tenants: map[string]map[string]entry{}, dependents: map[string]map[string]bool{},
		delivered: map[string]bool{}, pending: map[string]pendingWrite{}, early: map[string]bool{},
		safeMoved: make(chan struct{}), barrierWanted: make(chan struct{}, 1)}
}

type pendingWrite struct {
	token string
	at    time.Time
}

// decisionKey names one question within a tenant. Ids cannot contain NUL
// (authz.ValidateID), so the key is unambiguous.
func decisionKey(q authz.Question) string {
	return q.ObjectType + "\x00" + q.ObjectID + "\x00" + q.Permission + "\x00" + q.SubjectType + "\x00" + q.SubjectID
}

// lookup answers from the cache. token, when set, is the caller's consistency
// token: the cache may answer only if the stream has delivered it. rev is the
// revision the answer was computed at (nothing delivered since changed it).
func (c *decisionCache) lookup(tenant, key, token string) (allowed bool, rev string, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.ready || (token != "" && !c.delivered[token]) {
		return false, "", false
	}
	e, ok := c.tenants[tenant][key]
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return e.allowed, e.rev, ok
}

// fill is a miss in progress: what the cache looked like when it began.
type fill struct {
	tenant string
	epoch  uint64
	gen    uint64
	// need is the number of the last change applied before the fill began
	// that can touch its tenant: the fill must read at a barrier covering it.
	need uint64
}

// key names the fill for sharing: only misses that began in the same state
// may share one SpiceDB answer.
func (f fill) key() string {
	return f.tenant + "\x00" + strconv.FormatUint(f.epoch, 10) + "\x00" + strconv.FormatUint(f.gen, 10)
}

// begin starts a fill for tenant; ok is false when the cache is not ready.
func (c *decisionCache) begin(tenant string) (f fill, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.ready {
		return fill{}, false
	}
	return fill{tenant: tenant, epoch: c.epoch, gen: c.gens[tenant], need: max(c.gens[tenant], c.global)}, true
}

// mirrorFor returns the mirror when its state covers need: every change up
// to need has been applied to it, so an answer it gives is as good as one
// SpiceDB gives at a barrier covering need. Nil otherwise (not loaded, or a
// change it has not applied yet touched the fill's tenant).
func (c *decisionCache) mirrorFor(need uint64) *mirror {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.ready || c.mirror == nil || c.mirrorSeq < need {
		return nil
	}
	return c.mirror
}

// mirrored records that m has applied every change numbered up to seq.
func (c *decisionCache) mirrored(m *mirror, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mirror == m && seq > c.mirrorSeq {
		c.mirrorSeq = seq
	}
}

// swapMirror puts n in old's place (a rebuild: n holds what old holds).
func (c *decisionCache) swapMirror(old, n *mirror) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mirror == old {
		c.mirror = n
		c.mirrorRebuilds.Add(1)
	}
}

// store keeps answers SpiceDB gave at revision rev (at least a barrier
// covering f.need),
// unless anything that could change them was applied since f began.
func (c *decisionCache) store(f fill, rev string, answers map[string]bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready || c.epoch != f.epoch || c.gens[f.tenant] != f.gen {
		c.fillsDropped.Add(1)
		return false
	}
	m := c.tenants[f.tenant]
	if m == nil {
		m = make(map[string]entry, len(answers))
		c.tenants[f.tenant] = m
	}
	for k, v := range answers {
		if _, had := m[k]; !had {
			c.entries++
		}
		m[k] = entry{allowed: v, rev: rev}
	}
	// Over the bound: drop other tenants (map order is random enough) until it fits.
	for t, tm := range c.tenants {
		if c.entries <= c.max {
			break
		}
		if t != f.tenant {
			c.entries -= len(tm)
			delete(c.tenants, t)
		}
	}
	return true
}

// start makes the cache ready, empty, following a stream that began after
// the revision from (a barrier: the stream delivers every change it does not
// include). before are writes that SpiceDB answered before from was asked
// for: from includes them, and the stream will not deliver them. m, when
// not nil, is a mirror loaded at exactly from.
func (c *decisionCache) start(from string, before []string, m *mirror) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropAllLocked()
	c.safe = barrier{seq: c.global, token: from, at: time.Now()}
	c.mirror, c.mirrorSeq = m, c.global
	c.wakeLocked()
	for _, id := range before {
		if p, ok := c.pending[id]; ok {
			delete(c.pending, id)
			c.deliveredLocked(p.token)
		}
	}
	c.ready, c.lastApply, c.uncovered, c.resumeID = true, time.Now(), c.uncovered[:0], ""
	c.resyncs.Add(1)
}

// stop empties the cache and makes it answer nothing until the next start.
func (c *decisionCache) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropAllLocked()
	c.ready, c.mirror, c.resumeID = false, nil, ""
	c.wakeLocked() // waiting fills see the cache is not ready
}

// pause makes the cache answer and store nothing, as stop does, but keeps
// its entries, its bookkeeping and its mirror for a stream that resumes
// where the broken one stopped: the resumed stream delivers every change
// after the last checkpoint applied, so each entry is dropped on its
// stream as before. Fills in flight when it breaks are not stored.
func (c *decisionCache) pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.ready, c.resumeID, c.uncovered = false, "", c.uncovered[:0]
	c.wakeLocked()
}

// resume readies the cache for a stream resumed after a pause; id tags the
// marker write sent after the break, before the stream is opened. Until the
// stream has delivered the marker and a checkpoint followed, the cache
// answers nothing: the marker was committed after the break, so by then
// every change committed during the break has been applied.
func (c *decisionCache) resume(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resumeID, c.uncovered = id, c.uncovered[:0]
}

func (c *decisionCache) resumedLocked() {
	c.ready, c.resumeID, c.lastApply = true, "", time.Now()
	c.resumes.Add(1)
	c.wakeLocked()
}

func (c *decisionCache) dropAllLocked() {
	c.epoch++
	c.seq++
	c.global = c.seq
	clear(c.gens)
	clear(c.tenants)
	c.entries = 0
}

// change is what one Watch response tells the cache.
type change struct {
	tenants []string // tenants whose relationships changed
	global  bool     // a change that can reach any tenant (partner, platform, schema)
	// links are cross-tenant edges written: {U, T} when a relationship on
	// T's objects names U's object as its subject; T is "" for an object
	// outside any tenant (platform, partner) naming a tenant's object.
	links      [][2]string
	writeIDs   []string // authzd write ids carried in the transaction metadata
	checkpoint bool     // every change up to here has been delivered
}

// apply drops what the change can affect, and returns the number of the
// last change applied (a mirror that applies this response covers it). Write
// tokens count as delivered only at the checkpoint that follows their batch:
// a transaction committed before a write is delivered in the same batch or an
// earlier one, so by then everything a check carrying that write's token
// must see has been applied.
func (c *decisionCache) apply(ch change) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.lastApply = now
	for _, l := range ch.links {
		c.linkLocked(l[0], l[1])
	}
	if ch.global || (c.allDepend && len(ch.tenants) > 0) {
		c.dropAllLocked()
		c.invalidations.Add(1)
	} else {
		for _, t := range c.withDependentsLocked(ch.tenants) {
			c.seq++
			c.gens[t] = c.seq
			c.entries -= len(c.tenants[t])
			delete(c.tenants, t)
			c.invalidations.Add(1)
		}
	}
	c.uncovered = append(c.uncovered, ch.writeIDs...)
	if !ch.checkpoint {
		return c.seq
	}
	for _, id := range c.uncovered {
		if id == c.resumeID && id != "" {
			c.resumedLocked()
			continue
		}
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
	return c.seq
}
