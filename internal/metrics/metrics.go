// Package metrics holds authzd's Prometheus collectors on a registry of its own.
package metrics

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/status"
)

// Metrics are authzd's collectors.
type Metrics struct {
	registry    *prometheus.Registry
	httpLatency *prometheus.HistogramVec
	decisions   *prometheus.CounterVec
	auditRows   prometheus.Histogram
	auditCommit *prometheus.HistogramVec
	spicedb     *prometheus.HistogramVec
	checkBatch  prometheus.Histogram
	watchLag    prometheus.Histogram
	decide      *prometheus.HistogramVec
	auditWait   prometheus.Histogram
	tls         *TLS
	tlsOnce     sync.Once
}

// latencyBuckets resolve the sub-millisecond to 10 ms range where checks live.
var latencyBuckets = []float64{.0005, .001, .002, .003, .005, .0075, .01, .02, .05, .1, .25, .5, 1, 2.5, 5}

// New registers the collectors, plus the Go and process collectors. Each
// metric is written out in full though they look alike: a name, a help text,
// buckets and labels per metric, read at a glance, say more than a table would.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "authzd_http_request_duration_seconds", Help: "HTTP request latency by route, method and status.",
			Buckets: latencyBuckets,
		}, []string{"route", "method", "status"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authzd_decisions_total", Help: "Permission decisions answered, by module and result.",
		}, []string{"module", "decision"}),
		auditRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "authzd_audit_batch_rows", Help: "Rows per audit group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		auditCommit: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "authzd_audit_commit_seconds", Help: "Audit group commit latency by outcome.",
			Buckets: latencyBuckets,
		}, []string{"outcome"}),
		spicedb: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "authzd_spicedb_call_duration_seconds", Help: "SpiceDB call latency by method and gRPC code.",
			Buckets: latencyBuckets,
		}, []string{"method", "code"}),
		checkBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "authzd_spicedb_check_batch_items", Help: "Single checks answered per coalesced SpiceDB call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 8),
		}),
		decide: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "authzd_check_decide_seconds", Help: "Time to decide one check, by where the answer came from (cache, mirror, spicedb).",
			Buckets: latencyBuckets,
		}, []string{"source"}),
		auditWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "authzd_audit_wait_seconds", Help: "Time decisions waited for their audit rows to commit (queue, batch and commit), per request.",
			Buckets: latencyBuckets,
		}),
		watchLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "authzd_cache_watch_lag_seconds", Help: "Time from SpiceDB answering one of this authzd's writes to the Watch stream delivering it (the staleness of tokenless cache answers).",
			Buckets: latencyBuckets,
		}),
	}
	m.registry.MustRegister(m.httpLatency, m.decisions, m.auditRows, m.auditCommit, m.spicedb, m.checkBatch, m.watchLag, m.decide, m.auditWait,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// HTTP records one request.
func (m *Metrics) HTTP(route, method string, status int, d time.Duration) {
	m.httpLatency.WithLabelValues(route, method, http.StatusText(status)).Observe(d.Seconds())
}

// Decision counts one decision.
func (m *Metrics) Decision(module string, allowed bool) {
	d := "denied"
	if allowed {
		d = "allowed"
	}
	m.decisions.WithLabelValues(module, d).Inc()
}

// Decide records how long one check took to decide, by the answer's source.
func (m *Metrics) Decide(source string, d time.Duration) {
	if source == "" {
		source = "spicedb"
	}
	m.decide.WithLabelValues(source).Observe(d.Seconds())
}

// AuditWait records how long a request's decisions waited for their audit rows.
func (m *Metrics) AuditWait(d time.Duration) { m.auditWait.Observe(d.Seconds()) }

// AuditBatch records one group commit.
func (m *Metrics) AuditBatch(rows int, d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.auditRows.Observe(float64(rows))
	m.auditCommit.WithLabelValues(outcome).Observe(d.Seconds())
}

// SpiceDB records one SpiceDB call.
func (m *Metrics) SpiceDB(method string, d time.Duration, err error) {
	if i := strings.LastIndexByte(method, '/'); i >= 0 {
		method = method[i+1:]
	}
	m.spicedb.WithLabelValues(method, status.Code(err).String()).Observe(d.Seconds())
}

// CheckBatch records the size of one coalesced SpiceDB check call.
func (m *Metrics) CheckBatch(items int) { m.checkBatch.Observe(float64(items)) }

// CheckMemo exports the revision memo's hit and miss counts, read at scrape time.
func (m *Metrics) CheckMemo(stats func() (hits, misses uint64)) {
	m.registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authzd_check_memo_hits_total", Help: "Checks answered from the revision memo (same revision, no SpiceDB call).",
		}, func() float64 { h, _ := stats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authzd_check_memo_misses_total", Help: "Minimize-latency checks the revision memo could not answer.",
		}, func() float64 { _, mi := stats(); return float64(mi) }),
	)
}

// WatchLag records how long the Watch stream took to deliver one of authzd's writes.
func (m *Metrics) WatchLag(d time.Duration) { m.watchLag.Observe(d.Seconds()) }

// CacheState is the decision cache's state, read at scrape time; the cache
// reports it in this form (internal/cache: Cache.Stats).
type CacheState struct {
	Ready                                              bool
	Entries                                            int
	FrontierAge                                        time.Duration // since the stream last delivered anything
	Hits, Misses, Invalidations, Resyncs, FillsDropped uint64
	Resumes                                            uint64 // streams resumed after a break without emptying the cache
	Verified, Mismatches, Barriers                     uint64
	MirrorFills                                        uint64 // misses the mirror answered
	MirrorErrors                                       uint64 // misses the mirror failed to answer (each went to SpiceDB)
	MirrorRebuilds                                     uint64 // mirrors copied afresh
	MirrorRelationships                                int64  // held by the mirror (0 when off or not loaded)
}

// DecisionCache exports the decision cache's counters and gauges.
func (m *Metrics) DecisionCache(read func() CacheState) {
	counter := func(name, help string, v func(CacheState) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(read())) })
	}
	gauge := func(name, help string, v func(CacheState) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return v(read()) })
	}
	m.registry.MustRegister(
		counter("authzd_cache_hits_total", "Decisions answered from the decision cache.", func(s CacheState) uint64 { return s.Hits }),
		counter("authzd_cache_misses_total", "Decision cache lookups that went to SpiceDB (while the cache was ready).", func(s CacheState) uint64 { return s.Misses }),
		counter("authzd_cache_invalidations_total", "Tenant (or whole-cache) invalidations applied from the Watch stream.", func(s CacheState) uint64 { return s.Invalidations }),
		counter("authzd_cache_resyncs_total", "Watch streams started with an empty cache.", func(s CacheState) uint64 { return s.Resyncs }),
		counter("authzd_cache_resumes_total", "Watch streams resumed after a break with the cache's entries (and mirror) kept.", func(s CacheState) uint64 { return s.Resumes }),
		counter("authzd_cache_fills_dropped_total", "SpiceDB answers not stored because a change to their tenant arrived while they were asked.", func(s CacheState) uint64 { return s.FillsDropped }),
		counter("authzd_cache_barriers_total", "Barrier writes sent so that misses of changed tenants read a revision that includes the change.", func(s CacheState) uint64 { return s.Barriers }),
		counter("authzd_cache_mirror_fills_total", "Cache misses answered by the mirror (SpiceDB's engine on an in-process copy of its relationships).", func(s CacheState) uint64 { return s.MirrorFills }),
		counter("authzd_cache_mirror_errors_total", "Cache misses the mirror could not answer (a read its index does not serve, or an engine error); each went to SpiceDB.", func(s CacheState) uint64 { return s.MirrorErrors }),
		gauge("authzd_cache_mirror_relationships", "Relationships held by the decision cache's mirror (0 when it is off or not loaded).", func(s CacheState) float64 { return float64(s.MirrorRelationships) }),
		counter("authzd_cache_verified_total", "Sampled cache answers re-checked against SpiceDB.", func(s CacheState) uint64 { return s.Verified }),
		counter("authzd_cache_mismatch_total", "Sampled cache answers that SpiceDB contradicted (each drops its tenant).", func(s CacheState) uint64 { return s.Mismatches }),
		gauge("authzd_cache_entries", "Answers held by the decision cache.", func(s CacheState) float64 { return float64(s.Entries) }),
		gauge("authzd_cache_ready", "1 while the Watch stream runs and the cache answers.", func(s CacheState) float64 {
			if s.Ready {
				return 1
			}
			return 0
		}),
		gauge("authzd_cache_frontier_age_seconds", "Time since the Watch stream last delivered anything (changes or a checkpoint).", func(s CacheState) float64 { return s.FrontierAge.Seconds() }),
	)
}
