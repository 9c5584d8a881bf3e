package cache

import (
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// The barrier bookkeeping, without SpiceDB: which revision a fill may read at
// after which changes. The end-to-end proof is TestDecisionCacheDifferential
// and the integration TestConcurrency; the fake-upstream tests (check_test.go)
// drive whole checks.
func TestDecisionCacheBarriers(t *testing.T) {
	c := newDecisionCache(0)
	if _, _, ok := c.barrierFor(0); ok {
		t.Fatal("a cache that has not started offered a barrier")
	}
	c.start("start", nil, nil)

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
	c.start("restart", nil, nil)
	c.setBarrier(seq, "stale")
	f, _ = c.begin("t1")
	if tok, _, _ := c.barrierFor(f.need); tok != "restart" {
		t.Fatalf("after a restart a fill reads at %q, want the new start", tok)
	}

	// Fills read exactly at the barrier, so one that has served barrierMaxAge
	// (SpiceDB would refuse a snapshot older than its GC window) covers
	// nothing: the next fill asks for a new one, which may cover the same
	// changes and still replaces it.
	c.mu.Lock()
	c.safe.at = time.Now().Add(-barrierMaxAge)
	c.mu.Unlock()
	for len(c.barrierWanted) > 0 {
		<-c.barrierWanted
	}
	if tok, _, _ := c.barrierFor(f.need); tok != "" {
		t.Fatalf("a barrier older than %v was offered: %q", barrierMaxAge, tok)
	}
	select {
	case <-c.barrierWanted:
	default:
		t.Fatal("an aged barrier did not ask for a new one")
	}
	c.setBarrier(c.lastSeq(), "renewed")
	if tok, _, _ := c.barrierFor(f.need); tok != "renewed" {
		t.Fatalf("after renewal a fill reads at %q, want renewed", tok)
	}
}

// Edges between tenants: authzd's API never writes one, but a write straight
// to SpiceDB can (tenant:T#grant_K@role:U/r#member). T's answers then depend
// on U's relationships, and a change to U must drop T too, transitively.
func TestDecisionCacheCrossTenantEdges(t *testing.T) {
	c := newDecisionCache(0)
	c.start("start", nil, nil)
	fillT := func() {
		t.Helper()
		f, ok := c.begin("T")
		if !ok {
			t.Fatal("begin failed")
		}
		c.store(f, "rev", map[string]bool{"k": true})
		if _, _, hit := c.lookup("T", "k", ""); !hit {
			t.Fatal("an answer stored for T is not served")
		}
	}
	dropped := func() bool {
		_, _, hit := c.lookup("T", "k", "")
		return !hit
	}

	// The stream turns a cross-tenant relationship into a link; a delete does not make one.
	rel := func(op string) authz.ChangeBatch {
		return authz.ChangeBatch{Changes: []authz.RelationshipChange{{Operation: op, TenantID: "T", Tuple: authz.Tuple{
			ResourceType: authz.TypeTenant, ResourceID: "T", Relation: "grant_x", SubjectType: authz.TypeRole, SubjectID: "U/r", SubjectRelation: "member"}}}}
	}
	if ch := changeOf(rel("touch")); len(ch.links) != 1 || ch.links[0] != [2]string{"U", "T"} || len(ch.tenants) != 1 || ch.tenants[0] != "T" {
		t.Fatalf("touch of a cross-tenant grant: %+v, want a link U->T and tenant T", ch)
	}
	if ch := changeOf(rel("delete")); len(ch.links) != 0 {
		t.Fatalf("delete made links %v", ch.links)
	}

	// Without the edge, a change to U leaves T alone.
	fillT()
	c.apply(change{tenants: []string{"U"}})
	if dropped() {
		t.Fatal("a change to an unrelated tenant dropped T")
	}
	// The edge is written (a change to T, which drops T), then U changes: T is dropped again.
	c.apply(changeOf(rel("touch")))
	fillT()
	f, _ := c.begin("T") // a fill of T in flight while U changes must not be stored
	c.apply(change{tenants: []string{"U"}})
	if !dropped() {
		t.Fatal("a change to U did not drop T, whose grant names U's role")
	}
	c.store(f, "rev", map[string]bool{"k": true})
	if !dropped() {
		t.Fatal("a fill of T begun before U changed was stored")
	}
	// Transitively: U's role names V's role.
	c.apply(change{tenants: []string{"U"}, links: [][2]string{{"V", "U"}}})
	fillT()
	c.apply(change{tenants: []string{"V"}})
	if !dropped() {
		t.Fatal("a change to V did not drop T (T depends on U, U on V)")
	}
	// Edges survive a resync: they stay in SpiceDB.
	c.start("restart", nil, nil)
	fillT()
	c.apply(change{tenants: []string{"V"}})
	if !dropped() {
		t.Fatal("after a resync a change to V did not drop T")
	}
	// An object outside every tenant naming a tenant's object: any tenant change drops all.
	c.apply(change{global: true, links: [][2]string{{"W", ""}}})
	fillT()
	c.apply(change{tenants: []string{"Z"}})
	if !dropped() {
		t.Fatal("with a platform-level edge, a tenant change did not drop everything")
	}
}
