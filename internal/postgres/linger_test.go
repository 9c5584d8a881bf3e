package postgres

import (
	"testing"
	"time"
)

// TestArrivalRate: a writer lingers only when its recent batches say another
// record should arrive within the linger.
func TestArrivalRate(t *testing.T) {
	const linger = 500 * time.Microsecond
	now := time.Unix(1, 0)
	var light arrivalRate
	for range 50 {
		now = now.Add(time.Second)
		light.observe(now, 1)
	}
	if e := light.expected(now.Add(time.Second), linger); e >= 1 {
		t.Errorf("one record a second: expected %.4f records within %s, want under 1 (no linger)", e, linger)
	}
	var busy arrivalRate
	for range 500 {
		now = now.Add(time.Millisecond)
		busy.observe(now, 4)
	}
	if e := busy.expected(now.Add(time.Millisecond), linger); e < 1.8 || e > 2.2 {
		t.Errorf("4,000 records a second: expected %.2f records within %s, want about 2", e, linger)
	}
	// Load that stops: the first record after a pause is committed at once.
	if e := busy.expected(now.Add(time.Second), linger); e >= 0.01 {
		t.Errorf("after a pause: expected %.4f records within %s, want about 0", e, linger)
	}
}
