package spicedb

import (
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// memo remembers minimize_latency answers by the SpiceDB revision they were
// computed at, and answers a repeated check from memory only while that
// revision is still the one SpiceDB hands out.
//
// Why this is the same answer SpiceDB would give: a check without a zed token
// is evaluated at SpiceDB's quantized revision, which stays the same for a
// whole quantization window (5s by default), and an answer at a given revision
// never changes (authzd's schema has no caveats or expiring relationships).
// Every answer SpiceDB returns carries that revision (checked_at), so the
// stream of answers tells the memo which revision is current. The memo serves
// a remembered answer only if (a) it was computed at the current revision and
// (b) SpiceDB answered some check at that revision from a call started less
// than `window` ago. When SpiceDB moves to a new revision the first answer
// carrying it retires every older entry at once.
//
// What it costs in freshness: at most `window` beyond SpiceDB's own
// minimize_latency staleness, when SpiceDB has just moved on. What it does on
// failure: any failed SpiceDB call forgets everything, and without successful
// calls the memo stops answering after `window`, so an unreachable SpiceDB
// turns into errors (503), never into remembered yeses for long.
// Checks with a zed token never use it.
type memo struct {
	window time.Duration
	max    int

	mu      sync.RWMutex
	rev     string    // the current revision's checked_at token
	seen    time.Time // start of the latest successful call that returned rev
	failed  time.Time // when the latest call failed
	entries map[memoKey]bool

	hits, misses atomic.Uint64
}

type memoKey struct {
	resType, resID, perm, subType, subID string
}

func keyOf(it *v1.CheckBulkPermissionsRequestItem) memoKey {
	return memoKey{
		resType: it.GetResource().GetObjectType(), resID: it.GetResource().GetObjectId(), perm: it.GetPermission(),
		subType: it.GetSubject().GetObject().GetObjectType(), subID: it.GetSubject().GetObject().GetObjectId(),
	}
}

func newMemo(window time.Duration, maxEntries int) *memo {
	return &memo{window: window, max: maxEntries}
}

// get answers from memory when it may; ok is false otherwise.
func (m *memo) get(k memoKey, now time.Time) (allowed bool, rev string, ok bool) {
	m.mu.RLock()
	if m.rev != "" && now.Sub(m.seen) < m.window {
		allowed, ok = m.entries[k]
		rev = m.rev
	}
	m.mu.RUnlock()
	if ok {
		m.hits.Add(1)
	} else {
		m.misses.Add(1)
	}
	return allowed, rev, ok
}

// put records an answer SpiceDB gave at rev to a call started at started.
func (m *memo) put(k memoKey, allowed bool, rev string, started time.Time) {
	if rev == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !started.After(m.failed) {
		return // the call began before a failure was seen: do not revive the memo from it
	}
	switch {
	case rev == m.rev:
		if started.After(m.seen) {
			m.seen = started
		}
	case m.rev == "" || started.After(m.seen):
		// A call newer than any that confirmed rev saw another revision:
		// SpiceDB has moved on (or, behind a load balancer, another node
		// answers at another revision; either way only rev's entries go).
		m.rev, m.seen = rev, started
		m.entries = make(map[memoKey]bool, len(m.entries))
	default:
		return // a call older than the latest confirmation of rev, finishing late: ignore
	}
	if len(m.entries) < m.max {
		m.entries[k] = allowed
	}
}

// forget drops everything, after a failed call.
func (m *memo) forget(now time.Time) {
	m.mu.Lock()
	m.rev, m.entries, m.failed = "", nil, now
	m.mu.Unlock()
}

// stats reports hits and misses so far.
func (m *memo) stats() (hits, misses uint64) { return m.hits.Load(), m.misses.Load() }
