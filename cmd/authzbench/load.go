package main

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// outcome is what one operation produced: the decisions the server answered
// (each of which must have its audit row), how many were allowed, and how
// many differed from what the data set says they should be.
type outcome struct {
	answers int
	allowed int
	wrong   int
	retries int // requests repeated after a 503
}

// op performs one request. rng is the calling worker's own source.
type op func(ctx context.Context, rng *rand.Rand) (outcome, error)

// recorder collects one worker's samples; it is not shared.
type recorder struct {
	lat      []time.Duration
	ops      int
	errs     int
	answers  int // counted in and out of the measured window, for audit completeness
	allowed  int
	wrong    int
	retries  int
	firstErr error
}

func (r *recorder) add(d time.Duration, o outcome, err error, measured bool) {
	r.answers += o.answers
	r.retries += o.retries
	if !measured {
		return
	}
	r.ops++
	if err != nil {
		r.errs++
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	r.lat = append(r.lat, d)
	r.allowed += o.allowed
	r.wrong += o.wrong
}

// stats summarises a run.
type stats struct {
	Ops      int           // operations in the measured window
	Errors   int           // of which failed
	Answers  int           // decisions answered during the whole run, warm-up included
	Allowed  int           // allowed decisions in the measured window
	Wrong    int           // answers that differ from the data set's design
	Retries  int           // requests repeated after a 503 (provisioning only)
	Elapsed  time.Duration // measured window
	Lat      []time.Duration
	FirstErr error
	CPU      cpuUse
}

func merge(recs []*recorder, elapsed time.Duration) stats {
	s := stats{Elapsed: elapsed}
	for _, r := range recs {
		s.Ops += r.ops
		s.Errors += r.errs
		s.Answers += r.answers
		s.Allowed += r.allowed
		s.Wrong += r.wrong
		s.Retries += r.retries
		s.Lat = append(s.Lat, r.lat...)
		if s.FirstErr == nil {
			s.FirstErr = r.firstErr
		}
	}
	slices.Sort(s.Lat)
	return s
}

// Throughput is successful operations per second.
func (s stats) Throughput() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(len(s.Lat)) / s.Elapsed.Seconds()
}

// Quantile returns the q-quantile (0..1) of the successful operations' latency.
func (s stats) Quantile(q float64) time.Duration {
	if len(s.Lat) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(s.Lat)))) - 1
	return s.Lat[min(max(i, 0), len(s.Lat)-1)]
}

// AllowedShare is the share of allowed decisions among the measured ones.
func (s stats) AllowedShare() float64 {
	if n := len(s.Lat); n > 0 {
		return float64(s.Allowed) / float64(n)
	}
	return 0
}

// closedLoop runs conc workers that each send the next request as soon as
// the previous one is answered: first for warmup (not measured), then for dur.
// An operation counts when it starts and ends inside the measured window.
func closedLoop(ctx context.Context, conc int, warmup, dur time.Duration, cpu *cpuMeter, o op) stats {
	recs := make([]*recorder, conc)
	start := time.Now()
	from, to := start.Add(warmup), start.Add(warmup+dur)
	var wg sync.WaitGroup
	for w := range conc {
		recs[w] = &recorder{lat: make([]time.Duration, 0, 1024)}
		wg.Add(1)
		go func(r *recorder, seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(to) {
					return
				}
				out, err := o(ctx, rng)
				t1 := time.Now()
				r.add(t1.Sub(t0), out, err, !t0.Before(from) && !t1.After(to))
			}
		}(recs[w], uint64(w)+uint64(start.UnixNano()))
	}
	time.Sleep(time.Until(from))
	before := cpu.sample()
	time.Sleep(time.Until(to))
	after := cpu.sample()
	wg.Wait()
	s := merge(recs, dur)
	s.CPU = cpu.use(before, after)
	return s
}

// openLoop sends requests at a fixed rate for dur, whether or not earlier
// ones have been answered, and measures each latency from the moment the
// request was due, so a stall shows up in the percentiles instead of
// silently lowering the rate (no coordinated omission).
func openLoop(ctx context.Context, rate float64, dur time.Duration, cpu *cpuMeter, o op) stats {
	const workers = 256
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now().Add(20 * time.Millisecond)
	end := start.Add(dur)
	var seq atomic.Int64
	recs := make([]*recorder, workers)
	before := cpu.sample()
	var wg sync.WaitGroup
	for w := range workers {
		recs[w] = &recorder{}
		wg.Add(1)
		go func(r *recorder, seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
			for ctx.Err() == nil {
				due := start.Add(time.Duration(seq.Add(1)-1) * interval)
				if !due.Before(end) {
					return
				}
				time.Sleep(time.Until(due))
				out, err := o(ctx, rng)
				r.add(time.Since(due), out, err, true)
			}
		}(recs[w], uint64(w)+uint64(start.UnixNano()))
	}
	wg.Wait()
	after := cpu.sample()
	s := merge(recs, dur)
	s.CPU = cpu.use(before, after)
	// The rate was fixed: report it from the operations actually completed over the window they took.
	if el := after.at.Sub(start); el > dur {
		s.Elapsed = el
	}
	return s
}

// runJobs runs fn for jobs 0..n-1 on conc workers and times every request
// fn makes through rec.
func runJobs(ctx context.Context, conc, n int, cpu *cpuMeter, fn func(ctx context.Context, job int, rec func(time.Duration, outcome, error))) stats {
	recs := make([]*recorder, conc)
	jobs := make(chan int)
	before := cpu.sample()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		recs[w] = &recorder{}
		wg.Add(1)
		go func(r *recorder) {
			defer wg.Done()
			rec := func(d time.Duration, o outcome, err error) { r.add(d, o, err, true) }
			for j := range jobs {
				fn(ctx, j, rec)
			}
		}(recs[w])
	}
	for j := 0; j < n && ctx.Err() == nil; j++ {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	s := merge(recs, time.Since(start))
	s.CPU = cpu.use(before, cpu.sample())
	return s
}
