package latency

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRecorder: a trace rides the context, its marks are kept once its audit
// row was committed (other requests are not decisions), the ring keeps the
// latest in order, and a nil recorder records nothing.
func TestRecorder(t *testing.T) {
	r := NewRecorder(3)
	for i := range 5 {
		tr := r.Start()
		ctx := With(context.Background(), tr)
		From(ctx).Mark(Decoded)
		From(ctx).MarkAt(Decided, tr.start.Add(time.Duration(i+1)*time.Millisecond))
		if i != 2 { // the third request never committed a row
			From(ctx).MarkAt(Committed, tr.start.Add(10*time.Millisecond))
		}
		From(ctx).BatchRows(i)
		From(ctx).Mark(Written)
		r.Finish(tr)
	}
	got := r.Take()
	if len(got) != 3 {
		t.Fatalf("kept %d traces, want the latest 3 of 4 decisions", len(got))
	}
	for i, want := range []int{1, 3, 4} { // batch rows tell the requests apart
		if got[i].BatchRows != want || got[i].Stages[Decided] != int64(time.Duration(want+1)*time.Millisecond) {
			t.Errorf("trace %d = %+v, want request %d", i, got[i], want)
		}
		if got[i].Stages[Written] < got[i].Stages[Decoded] || got[i].Start == 0 {
			t.Errorf("trace %d: marks %v, start %d", i, got[i].Stages, got[i].Start)
		}
	}
	if again := r.Take(); len(again) != 0 {
		t.Errorf("Take kept %d traces after returning them", len(again))
	}

	var none *Recorder
	if tr := none.Start(); tr != nil {
		t.Fatal("a nil recorder started a trace")
	}
	none.Finish(nil)
	From(context.Background()).Mark(Decoded) // no trace: no panic

	tr := r.Start()
	tr.MarkAt(Committed, tr.start.Add(time.Millisecond))
	r.Finish(tr)
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/debug/latency", nil))
	var served []Record
	if err := json.Unmarshal(w.Body.Bytes(), &served); err != nil || len(served) != 1 || served[0].Stages[Committed] != int64(time.Millisecond) {
		t.Errorf("served %s (%v), want the one trace", w.Body.String(), err)
	}
}
