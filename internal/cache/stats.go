package cache

import "time"

// Stats is the decision cache's state for metrics.
type Stats struct {
	Enabled, Ready                                     bool
	Entries                                            int
	FrontierAge                                        time.Duration // since the stream last delivered anything
	Hits, Misses, Invalidations, Resyncs, FillsDropped uint64
	Resumes                                            uint64 // streams resumed after a break without emptying the cache
	Verified, Mismatches, Barriers                     uint64
	MirrorFills                                        uint64 // misses the mirror answered
	MirrorErrors                                       uint64 // misses the mirror failed to answer (each went to SpiceDB)
	MirrorRebuilds                                     uint64 // mirrors copied afresh (mirror.rebuilt)
	MirrorRelationships                                int64  // held by the mirror (0 when off or not loaded)
}

func (c *decisionCache) stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := Stats{Enabled: true, Ready: c.ready, Entries: c.entries, Hits: c.hits.Load(), Misses: c.misses.Load(),
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
