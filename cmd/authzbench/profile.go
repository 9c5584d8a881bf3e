package main

import (
	"fmt"
	"os"
	"slices"

	"github.com/google/pprof/profile"

	"github.com/scailabs/authzd/internal/cache"
)

// cpuSplit is what a profiled run's CPU profile of authzd says of where its
// time went. authzd's CPU per operation itself is read off /proc for every
// run (cpuUse.Authzd); the profile splits it.
type cpuSplit struct {
	name        string
	ops         int
	authzdPerOp float64 // µs of authzd's CPU per operation (measured window, from /proc)
	// mirrorShare is the share of samples in the decision cache mirror's
	// walks (SpiceDB's engine answering misses inside authzd; they carry
	// cache.ProfileLabel).
	mirrorShare float64
	// gcShare is the share of samples in the garbage collector's background
	// mark workers.
	gcShare float64
}

func (s cpuSplit) mirrorPerOp() float64 { return s.authzdPerOp * s.mirrorShare }
func (s cpuSplit) gcPerOp() float64     { return s.authzdPerOp * s.gcShare }

// shares reads a CPU profile of authzd and returns the shares of its CPU
// time spent in the mirror's walks and in the garbage collector's background
// marking.
func shares(path string) (mirror, gc float64, err error) {
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
	var inMirror, inGC, total int64
	for _, s := range p.Sample {
		v := s.Value[idx]
		total += v
		if slices.Contains(s.Label[cache.ProfileLabel], cache.ProfileLabelMirror) {
			inMirror += v
		}
		if inFunction(s, "runtime.gcBgMarkWorker") {
			inGC += v
		}
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("%s holds no samples", path)
	}
	return float64(inMirror) / float64(total), float64(inGC) / float64(total), nil
}

// inFunction says whether fn is on the sample's stack.
func inFunction(s *profile.Sample, fn string) bool {
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function != nil && l.Function.Name == fn {
				return true
			}
		}
	}
	return false
}
