package auditchain

import (
	"context"
	"crypto/ed25519"
	"sort"
	"testing"
	"time"
)

// memChain is a chain held in memory, to test the walk's paging without a database.
type memChain struct {
	rows []Row
	head Head
	cps  []Checkpoint
}

func (m *memChain) Anchor(context.Context) (Anchor, error) {
	return Anchor{Head: Head{Hash: Genesis}}, nil
}
func (m *memChain) Head(context.Context) (Head, error) { return m.head, nil }
func (m *memChain) Before(context.Context, time.Time) (Head, error) {
	return Head{Hash: Genesis}, nil
}
func (m *memChain) Unchained(context.Context, int64) (int64, error) { return 0, nil }

func (m *memChain) Rows(_ context.Context, after int64, limit int) ([]Row, error) {
	return memPage(m.rows, func(r Row) int64 { return r.Seq }, after, limit), nil
}

func (m *memChain) Checkpoints(_ context.Context, after int64, limit int) ([]Checkpoint, error) {
	return memPage(m.cps, func(c Checkpoint) int64 { return c.Seq }, after, limit), nil
}

// memPage is up to limit of xs, in their order, whose sequence is above after.
func memPage[T any](xs []T, seq func(T) int64, after int64, limit int) []T {
	var out []T
	for _, x := range xs {
		if seq(x) > after && len(out) < limit {
			out = append(out, x)
		}
	}
	return out
}

// TestWalkPageBoundary: a duplicate sequence number that falls on a page
// boundary is still read and reported.
func TestWalkPageBoundary(t *testing.T) {
	s, _ := GenerateSigner()
	trusted := map[string]ed25519.PublicKey{s.KeyID(): s.Public()}
	mk := func() *memChain {
		m := &memChain{rows: make([]Row, PageSize+200)}
		for i := range m.rows {
			m.rows[i] = Row{ID: int64(i + 1), OccurredAt: time.Unix(int64(i), 0), Module: "m", Decision: "allowed"}
		}
		m.head = Extend(Head{Hash: Genesis}, m.rows)
		m.cps = []Checkpoint{s.Sign(m.head, time.Now())}
		return m
	}
	if _, p, err := Walk(context.Background(), mk(), time.Time{}, trusted); p != nil || err != nil {
		t.Fatalf("untouched: %v %v", p, err)
	}
	m := mk()
	extra := m.rows[PageSize-1] // sequence PageSize, the last row of the first page
	extra.ID, extra.ActorUserID = 99999, "mallory"
	m.rows = append(m.rows, extra)
	sort.SliceStable(m.rows, func(i, j int) bool { return m.rows[i].Seq < m.rows[j].Seq })
	_, p, err := Walk(context.Background(), m, time.Time{}, trusted)
	if err != nil || p == nil || p.Kind != Inserted || p.RowID != 99999 {
		t.Errorf("duplicate at the page boundary: %v %v; want inserted naming row 99999", p, err)
	}
}
