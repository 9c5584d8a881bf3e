// Package latency records where single requests spend their time inside
// authzd: a trace per request, marked as it passes each stage (decoded,
// decided, its audit row sent, the statement answered, the commit flushed,
// the answer written), kept in a ring that the profiler's listener serves at
// GET /debug/latency. It exists to show a decision's latency by component
// next to the floor of one durable commit; a nil Recorder (no AUTHZ_DEBUG_ADDR)
// records nothing and costs a nil check per stage.
package latency

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Stage is a point a request passes; its mark is the time since the request began.
type Stage int

// The stages of a decision, in order.
const (
	Decoded   Stage = iota // read, authenticated, decoded and validated
	Decided                // decided (decision cache, mirror or SpiceDB)
	Sent                   // the audit batch holding its row sent to Postgres
	Statement              // Postgres answered the batch's statement
	Committed              // Postgres committed the batch (its WAL flushed)
	Written                // the answer handed to the HTTP server
	NumStages
)

// Trace is one request's marks. Its methods are safe on a nil Trace. The
// audit writer marks Sent, Statement and Committed before it releases the
// request, which reads them only after.
type Trace struct {
	start time.Time
	at    [NumStages]time.Duration
	rows  int
}

// Mark records that the request has just passed s.
func (t *Trace) Mark(s Stage) {
	if t != nil {
		t.at[s] = time.Since(t.start)
	}
}

// MarkAt records that the request passed s at the given time.
func (t *Trace) MarkAt(s Stage, at time.Time) {
	if t != nil {
		t.at[s] = at.Sub(t.start)
	}
}

// BatchRows records how many rows the audit commit holding the request's row carried.
func (t *Trace) BatchRows(n int) {
	if t != nil {
		t.rows = n
	}
}

type ctxKey struct{}

// With returns ctx carrying t.
func With(ctx context.Context, t *Trace) context.Context { return context.WithValue(ctx, ctxKey{}, t) }

// From returns the trace ctx carries, or nil.
func From(ctx context.Context) *Trace {
	t, _ := ctx.Value(ctxKey{}).(*Trace)
	return t
}

// Record is a finished trace as served: when the request began (Unix
// nanoseconds, to be matched with a client's window on the same host) and
// each stage's mark in nanoseconds since then (0: not passed).
type Record struct {
	Start     int64            `json:"start_unix_ns"`
	Stages    [NumStages]int64 `json:"stages_ns"`
	BatchRows int              `json:"batch_rows"`
}

// Recorder keeps the latest finished traces of decisions, up to its size.
type Recorder struct {
	mu   sync.Mutex
	ring []Record
	next int
	n    int
}

// NewRecorder keeps up to size traces.
func NewRecorder(size int) *Recorder { return &Recorder{ring: make([]Record, max(size, 1))} }

// Start begins a trace; nil when r is nil.
func (r *Recorder) Start() *Trace {
	if r == nil {
		return nil
	}
	return &Trace{start: time.Now()}
}

// Finish keeps t if it is a decision's: one whose audit row was committed.
func (r *Recorder) Finish(t *Trace) {
	if r == nil || t == nil || t.at[Committed] == 0 {
		return
	}
	rec := Record{Start: t.start.UnixNano(), BatchRows: t.rows}
	for i, d := range t.at {
		rec.Stages[i] = int64(d)
	}
	r.mu.Lock()
	r.ring[r.next] = rec
	r.next = (r.next + 1) % len(r.ring)
	r.n = min(r.n+1, len(r.ring))
	r.mu.Unlock()
}

// Take returns the kept traces, oldest first, and forgets them.
func (r *Recorder) Take() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Record, 0, r.n)
	for i := range r.n {
		out = append(out, r.ring[(r.next-r.n+i+len(r.ring))%len(r.ring)])
	}
	r.n = 0
	return out
}

// ServeHTTP answers the kept traces as a JSON array and forgets them.
func (r *Recorder) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(r.Take())
}
