// Package metrics holds authzd's Prometheus collectors on a registry of its own.
package metrics

import (
	"net/http"
	"strings"
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
}

// latencyBuckets resolve the sub-millisecond to 10 ms range where checks live.
var latencyBuckets = []float64{.0005, .001, .002, .003, .005, .0075, .01, .02, .05, .1, .25, .5, 1, 2.5, 5}

// New registers the collectors, plus the Go and process collectors.
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
	}
	m.registry.MustRegister(m.httpLatency, m.decisions, m.auditRows, m.auditCommit, m.spicedb, m.checkBatch,
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
