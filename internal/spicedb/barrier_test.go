package spicedb

import (
	"testing"
)

// The barrier bookkeeping, without SpiceDB: which revision a fill may read at
// after which changes. The end-to-end proof is TestDecisionCacheDifferential
// and the integration TestConcurrency.
func TestDecisionCacheBarriers(t *testing.T) {
	c := newDecisionCache(0)
	if _, _, ok := c.barrierFor(0); ok {
		t.Fatal("a cache that has not started offered a barrier")
	}
	c.start("start", nil)

	// Nothing changed since the stream started: its start revision serves.
	f, ok := c.begin("t1")
	if !ok {
		t.Fatal("begin on a started cache failed")
	}
	if tok, _, _ := c.barrierFor(f.need); tok != "start" {
		t.Fatalf("fill of an unchanged tenant reads at %q, want the stream's start", tok)
	}

	// A change to t1: t1's fills need a newer barrier, t2's do not.
	before := c.lastSeq()
	c.apply(change{tenants: []string{"t1"}})
	f1, _ := c.begin("t1")
	f2, _ := c.begin("t2")
	if tok, _, _ := c.barrierFor(f2.need); tok != "start" {
		t.Fatalf("fill of an unchanged tenant reads at %q, want the stream's start", tok)
	}
	tok, moved, ok := c.barrierFor(f1.need)
	if !ok || tok != "" || moved == nil {
		t.Fatalf("fill of a changed tenant was offered %q (ok %v): it must wait for a barrier", tok, ok)
	}
	select {
	case <-c.barrierWanted:
	default:
		t.Fatal("a waiting fill did not ask for a barrier")
	}

	// A barrier sent before the change was applied does not cover it.
	c.setBarrier(before, "old")
	if tok, _, _ := c.barrierFor(f1.need); tok != "" {
		t.Fatalf("a barrier sent before the change was offered: %q", tok)
	}
	// One sent after it does, and wakes the waiting fill.
	c.setBarrier(c.lastSeq(), "b1")
	select {
	case <-moved:
	default:
		t.Fatal("a new barrier did not wake the waiting fill")
	}
	if tok, _, _ := c.barrierFor(f1.need); tok != "b1" {
		t.Fatalf("fill reads at %q, want b1", tok)
	}
	// Barriers never move back.
	c.setBarrier(before, "older")
	if tok, _, _ := c.barrierFor(f1.need); tok != "b1" {
		t.Fatalf("an older barrier replaced a newer one: %q", tok)
	}

	// A change that can reach every tenant makes every fill wait.
	c.apply(change{global: true})
	g, _ := c.begin("t2")
	if tok, _, _ := c.barrierFor(g.need); tok != "" {
		t.Fatalf("after a partner or platform change a fill was offered %q", tok)
	}

	// Stopping wakes waiting fills and offers nothing.
	_, moved, _ = c.barrierFor(g.need)
	c.stop()
	select {
	case <-moved:
	default:
		t.Fatal("stop did not wake a waiting fill")
	}
	if _, _, ok := c.barrierFor(0); ok {
		t.Fatal("a stopped cache offered a barrier")
	}

	// A barrier begun before a restart is older than the new stream's start.
	seq := c.lastSeq()
	c.start("restart", nil)
	c.setBarrier(seq, "stale")
	f, _ = c.begin("t1")
	if tok, _, _ := c.barrierFor(f.need); tok != "restart" {
		t.Fatalf("after a restart a fill reads at %q, want the new start", tok)
	}
}
