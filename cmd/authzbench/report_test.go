package main

import (
	"testing"
	"time"
)

// TestMedianP99: the p99 goal of repeated half-peak runs is judged on the
// median of their p99s, listed in run order, with every run's errors counted.
func TestMedianP99(t *testing.T) {
	run := func(p99 time.Duration, errs int) stats {
		return stats{Lat: []time.Duration{p99}, Errors: errs} // one latency: every quantile is it
	}
	for _, tc := range []struct {
		name string
		runs []stats
		want time.Duration
		each string
		errs int
	}{
		{"none", nil, 0, "", 0},
		{"one", []stats{run(12*time.Millisecond, 0)}, 12 * time.Millisecond, "12.00", 0},
		{"odd", []stats{run(30*time.Millisecond, 0), run(9*time.Millisecond, 1), run(14*time.Millisecond, 0)}, 14 * time.Millisecond, "30.00, 9.00, 14.00", 1},
		{"even", []stats{run(8*time.Millisecond, 0), run(20*time.Millisecond, 0), run(12*time.Millisecond, 2), run(40*time.Millisecond, 0)}, 16 * time.Millisecond, "8.00, 20.00, 12.00, 40.00", 2},
	} {
		got, each, errs := medianP99(tc.runs)
		if got != tc.want || each != tc.each || errs != tc.errs {
			t.Errorf("%s: medianP99 = %v, %q, %d; want %v, %q, %d", tc.name, got, each, errs, tc.want, tc.each, tc.errs)
		}
	}
}
