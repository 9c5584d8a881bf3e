package cache

import (
	"time"

	"github.com/scailabs/authzd/internal/metrics"
)

// Stats is the decision cache's state, in the form metrics exports it.
type Stats = metrics.CacheState

func (c *decisionCache) stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := Stats{Ready: c.ready, Entries: c.entries, Hits: c.hits.Load(), Misses: c.misses.Load(),
		Invalidations: c.invalidations.Load(), Resyncs: c.resyncs.Load(), Resumes: c.resumes.Load(), FillsDropped: c.fillsDropped.Load(),
		Verified: c.verified.Load(), Mismatches: c.mismatches.Load(), Barriers: c.barriers.Load(),
		MirrorFills: c.mirrorFills.Load(), MirrorErrors: c.mirrorErrors.Load(), MirrorRebuilds: c.mirrorRebuilds.Load()}
	if c.ready {
		s.FrontierAge = time.Since(c.lastApply)
	}
	if c.mirror != nil {
		s.MirrorRelationships = c.mirror.rels.Load()
	}
	return s
}
