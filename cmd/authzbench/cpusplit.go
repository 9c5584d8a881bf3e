package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"

	"github.com/google/pprof/profile"

	"github.com/scailabs/authzd/internal/spicedb"
)

// The load generator runs in this process beside authzd, so the process's CPU
// time is both. Its goroutines carry a profiler label (labelLoad; goroutines
// they start, such as the HTTP client's connection readers and writers,
// inherit it), and a CPU profile of a run splits the process's time between
// samples with the label and samples without: authzd's HTTP server and
// handlers, the audit writer, the decision cache, the SpiceDB client, and the
// garbage collector's background work, which the load generator's
// allocations cause too (so authzd's share is, if anything, overstated).

const (
	loadLabelKey   = "authzbench"
	loadLabelValue = "load"
)

// labelLoad marks the calling goroutine, and the goroutines it starts, as the
// load generator's.
func labelLoad(ctx context.Context) {
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels(loadLabelKey, loadLabelValue)))
}

// cpuSplit is one profiled run's CPU time split between the load generator
// and authzd.
type cpuSplit struct {
	name      string
	ops       int
	selfPerOp float64 // µs of this process's CPU per operation (measured window, from /proc)
	loadShare float64 // share of the profile's CPU samples that carry the load label (whole run)
	// mirrorShare is the share of samples of the decision cache mirror's
	// walks (SpiceDB's engine answering misses inside authzd; they carry
	// spicedb.ProfileLabel).
	mirrorShare float64
}

// authzdPerOp is authzd's own CPU per operation: the process's, less the load generator's share.
func (s cpuSplit) authzdPerOp() float64 { return s.selfPerOp * (1 - s.loadShare) }

// mirrorPerOp is the part of authzdPerOp spent in the mirror's walks.
func (s cpuSplit) mirrorPerOp() float64 { return s.selfPerOp * s.mirrorShare }

// shares reads a CPU profile and returns the shares of its CPU time spent
// in goroutines labelled as the load generator's and as the mirror's walks.
func shares(path string) (load, mirror float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return 0, 0, fmt.Errorf("parse %s: %w", path, err)
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return 0, 0, fmt.Errorf("%s has no cpu samples", path)
	}
	var inLoad, inMirror, total int64
	for _, s := range p.Sample {
		v := s.Value[idx]
		total += v
		switch {
		case slices.Contains(s.Label[loadLabelKey], loadLabelValue):
			inLoad += v
		case slices.Contains(s.Label[spicedb.ProfileLabel], spicedb.ProfileLabelMirror):
			inMirror += v
		}
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("%s holds no samples", path)
	}
	return float64(inLoad) / float64(total), float64(inMirror) / float64(total), nil
}
