package http

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/scailabs/authzd/internal/authz"
)

// emptyWorld is a world without anything: every record is created, with one
// update of its own.
type emptyWorld struct{}

func (emptyWorld) Revision() string            { return "zed-r" }
func (emptyWorld) HasPartner(string) bool      { return false }
func (emptyWorld) HasTenant(string) bool       { return false }
func (emptyWorld) HasRole(string, string) bool { return false }
func (emptyWorld) Records() ([]authz.Record, int) {
	return nil, 0
}
func (emptyWorld) Plan(r authz.Record) authz.RecordPlan {
	return authz.RecordPlan{Status: authz.StatusCreated, Updates: []authz.Update{{Relationship: authz.Relationship{
		ResourceType: "partner", ResourceID: r.PartnerID, Relation: "platform", SubjectType: "platform", SubjectID: "scaigrid"}}}}
}

// fakeTransfer refuses writes of more than limit updates for their size and
// fails every write after the first failAfter.
type fakeTransfer struct {
	mu        sync.Mutex
	limit     int
	failAfter int
	writes    []int // the size of each write that landed
	barriers  int
}

func (f *fakeTransfer) ReadWorld(context.Context, string) (authz.World, error) {
	return emptyWorld{}, nil
}

func (f *fakeTransfer) WriteBatch(ctx context.Context, updates []authz.Update, _ []authz.Condition) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if authz.WriteIDFrom(ctx) == "" {
		return "", fmt.Errorf("untagged write")
	}
	if f.limit > 0 && len(updates) > f.limit {
		return "", authz.Errorf(authz.ETOOLARGE, "too many updates")
	}
	if f.failAfter >= 0 && len(f.writes) >= f.failAfter {
		return "", authz.Errorf(authz.EUNAVAILABLE, "SpiceDB is unavailable")
	}
	f.writes = append(f.writes, len(updates))
	return "zed-w", nil
}

func (f *fakeTransfer) ImportBarrier(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.barriers++
	return "zed-b", nil
}

func partners(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"kind":"partner","partner_id":"p%d"}`+"\n", i)
	}
	return b.String()
}

func (f *fixture) importDoc(t *testing.T, doc string) answer {
	t.Helper()
	req := httptest.NewRequest("POST", "/v1/import", strings.NewReader(doc))
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	req.Header.Set("Content-Type", "application/x-ndjson")
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return answer{status: rec.Code, raw: rec.Body.String()}
}

// TestImportHalvesRefusedBatches: a SpiceDB allowing 100 updates a call still
// takes the whole import: each refused batch is halved until it fits, and
// every write that lands has its import.batch row.
func TestImportHalvesRefusedBatches(t *testing.T) {
	tr := &fakeTransfer{limit: 100, failAfter: -1}
	f := newFixture(t, func(o *Options) { o.Transfer = tr })
	a := f.importDoc(t, partners(450))
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	total := 0
	for _, n := range tr.writes {
		if n > 100 {
			t.Fatalf("a write of %d updates landed", n)
		}
		total += n
	}
	rows := 0
	for _, e := range f.audit.events {
		if e.Action == "import.batch" {
			rows++
		}
	}
	if total != 450 || rows != len(tr.writes) || tr.barriers != 1 || !strings.Contains(a.raw, fmt.Sprintf(`"batches":%d`, len(tr.writes))) {
		t.Fatalf("%d updates in %d writes, %d import.batch rows, %d barriers; answer %s", total, len(tr.writes), rows, tr.barriers, a.raw)
	}
}

// TestImportCutMidway: a write failing part-way answers 503 naming the
// batches that landed, and writes no final row or barrier.
func TestImportCutMidway(t *testing.T) {
	tr := &fakeTransfer{failAfter: 2}
	f := newFixture(t, func(o *Options) { o.Transfer, o.Import = tr, ImportOptions{Batch: 10, Writers: 1} })
	a := f.importDoc(t, partners(50))
	if a.status != http.StatusServiceUnavailable || !strings.Contains(a.raw, "after 2 of 5 batches landed") || !strings.Contains(a.raw, "again") {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	for _, e := range f.audit.events {
		if e.Action != "import.batch" {
			t.Fatalf("a failed import wrote a %s row", e.Action)
		}
	}
	if len(f.audit.events) != 2 || tr.barriers != 0 {
		t.Fatalf("%d rows, %d barriers; want the 2 batches' rows and no barrier", len(f.audit.events), tr.barriers)
	}
}
