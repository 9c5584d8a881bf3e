package cache

import "time"

// barrier is a revision that includes every change numbered up to seq.
type barrier struct {
	seq   uint64
	token string
	at    time.Time // when it was taken: one older than barrierMaxAge covers nothing
}

// barrierMaxAge is how long a barrier serves fills. Fills read exactly at
// it, so it must stay well inside SpiceDB's garbage-collection window
// (--datastore-gc-window, 24 h by default); a new barrier also starts
// SpiceDB's dispatch cache over, so it should not be short either.
const barrierMaxAge = 5 * time.Minute

// barrierFor returns a barrier revision covering need, or, when the newest
// barrier is older, a channel closed when it moves (a new barrier has been
// asked for). ok is false when the cache is not ready.
func (c *decisionCache) barrierFor(need uint64) (token string, moved <-chan struct{}, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.ready {
		return "", nil, false
	}
	if c.safe.token != "" && c.safe.seq >= need && time.Since(c.safe.at) < barrierMaxAge {
		return c.safe.token, nil, true
	}
	select {
	case c.barrierWanted <- struct{}{}:
	default: // already asked
	}
	return "", c.safeMoved, true
}

// lastSeq is the number of the last change applied: a barrier sent after
// this call covers it.
func (c *decisionCache) lastSeq() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.seq
}

// setBarrier records token as covering every change numbered up to seq.
func (c *decisionCache) setBarrier(seq uint64, token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if token == "" || (c.safe.token != "" && seq < c.safe.seq) {
		return
	}
	c.safe = barrier{seq: seq, token: token, at: time.Now()}
	c.barriers.Add(1)
	c.wakeLocked()
}

// wakeLocked wakes every fill waiting for a barrier.
func (c *decisionCache) wakeLocked() {
	close(c.safeMoved)
	c.safeMoved = make(chan struct{})
}
