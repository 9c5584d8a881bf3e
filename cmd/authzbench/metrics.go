package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// facadeMetrics is what authzd's own /metrics says about a run: how the
// audit group commit batched and how long SpiceDB took from the facade's side.
type facadeMetrics struct {
	batches, batchRows     float64 // audit commits and the rows they held
	commits, commitSeconds float64 // audit commit count and total latency
	calls, callSeconds     float64 // SpiceDB calls and their total latency
	checkCalls, checkItems float64 // coalesced check calls and the single checks they answered
	memoHits, memoMisses   float64 // checks answered from the revision memo, and not
	cacheHits, cacheMisses float64 // decision cache lookups answered, and not
	// Requests and audit commits in all, and within 10 ms, from authzd's
	// latency histograms: the share of the tail that arises inside authzd.
	requests, requestsFast float64
	commitsFast            float64
	// Decisions in all and within 10 ms by source (cache, mirror, spicedb),
	// and requests' waits for their audit rows in all and within 10 ms.
	decideN, decideFast map[string]float64
	waitN, waitFast     float64
	gcCycles            float64 // garbage collections completed
	heapInuse           float64 // bytes in in-use heap spans when scraped (a gauge: sub keeps the later value)
}

// scrape reads the counters of authzd's Prometheus endpoint.
func (c *apiClient) scrape(ctx context.Context) (facadeMetrics, error) {
	b, err := c.do(ctx, "GET", "/metrics", "", "")
	if err != nil {
		return facadeMetrics{}, err
	}
	m := facadeMetrics{decideN: map[string]float64{}, decideFast: map[string]float64{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			if j := strings.LastIndexByte(line, '}'); j >= 0 {
				name, rest = line[:i], strings.TrimSpace(line[j+1:])
			}
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			continue
		}
		if strings.HasSuffix(name, "_bucket") {
			// Of the latency histograms, only the 10 ms bucket is read.
			if strings.Contains(line, `le="0.01"`) {
				switch name {
				case "authzd_http_request_duration_seconds_bucket":
					m.requestsFast += v
				case "authzd_check_decide_seconds_bucket":
					m.decideFast[label(line, "source")] += v
				case "authzd_audit_wait_seconds_bucket":
					m.waitFast += v
				case "authzd_audit_commit_seconds_bucket":
					m.commitsFast += v
				}
			}
			continue
		}
		switch name {
		case "authzd_http_request_duration_seconds_count":
			m.requests += v
		case "authzd_check_decide_seconds_count":
			m.decideN[label(line, "source")] += v
		case "authzd_audit_wait_seconds_count":
			m.waitN += v
		case "authzd_audit_batch_rows_count":
			m.batches += v
		case "authzd_audit_batch_rows_sum":
			m.batchRows += v
		case "authzd_audit_commit_seconds_count":
			m.commits += v
		case "authzd_audit_commit_seconds_sum":
			m.commitSeconds += v
		case "authzd_spicedb_call_duration_seconds_count":
			m.calls += v
		case "authzd_spicedb_call_duration_seconds_sum":
			m.callSeconds += v
		case "authzd_spicedb_check_batch_items_count":
			m.checkCalls += v
		case "authzd_spicedb_check_batch_items_sum":
			m.checkItems += v
		case "authzd_check_memo_hits_total":
			m.memoHits += v
		case "authzd_check_memo_misses_total":
			m.memoMisses += v
		case "authzd_cache_hits_total":
			m.cacheHits += v
		case "authzd_cache_misses_total":
			m.cacheMisses += v
		case "go_gc_duration_seconds_count":
			m.gcCycles += v
		case "go_memstats_heap_inuse_bytes":
			m.heapInuse = v
		}
	}
	return m, sc.Err()
}

func (m facadeMetrics) sub(o facadeMetrics) facadeMetrics {
	return facadeMetrics{batches: m.batches - o.batches, batchRows: m.batchRows - o.batchRows, commits: m.commits - o.commits,
		commitSeconds: m.commitSeconds - o.commitSeconds, calls: m.calls - o.calls, callSeconds: m.callSeconds - o.callSeconds,
		checkCalls: m.checkCalls - o.checkCalls, checkItems: m.checkItems - o.checkItems, memoHits: m.memoHits - o.memoHits,
		memoMisses: m.memoMisses - o.memoMisses, cacheHits: m.cacheHits - o.cacheHits, cacheMisses: m.cacheMisses - o.cacheMisses,
		requests: m.requests - o.requests, requestsFast: m.requestsFast - o.requestsFast, commitsFast: m.commitsFast - o.commitsFast,
		gcCycles: m.gcCycles - o.gcCycles, heapInuse: m.heapInuse, waitN: m.waitN - o.waitN, waitFast: m.waitFast - o.waitFast,
		decideN: subMap(m.decideN, o.decideN), decideFast: subMap(m.decideFast, o.decideFast)}
}

func subMap(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		out[k] = v - b[k]
	}
	return out
}

// label returns the value of a label in a Prometheus text line.
func label(line, name string) string {
	_, rest, ok := strings.Cut(line, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// String summarises the run's audit batching and SpiceDB latency as authzd saw them.
func (m facadeMetrics) String() string {
	var parts []string
	if m.batches > 0 {
		parts = append(parts, fmt.Sprintf("%.0f audit commits, %.1f rows each", m.batches, m.batchRows/m.batches))
	}
	if m.commits > 0 {
		parts = append(parts, fmt.Sprintf("commit %.2f ms", 1000*m.commitSeconds/m.commits))
	}
	if m.calls > 0 {
		parts = append(parts, fmt.Sprintf("%.0f SpiceDB calls of %.2f ms", m.calls, 1000*m.callSeconds/m.calls))
	}
	if m.memoHits+m.memoMisses > 0 {
		parts = append(parts, fmt.Sprintf("revision memo answered %.0f%% of checks", 100*m.memoHits/(m.memoHits+m.memoMisses)))
	}
	if m.cacheHits+m.cacheMisses > 0 {
		parts = append(parts, fmt.Sprintf("decision cache hit %.0f%% of %.0f lookups", 100*m.cacheHits/(m.cacheHits+m.cacheMisses), m.cacheHits+m.cacheMisses))
	}
	if m.checkCalls > 0 {
		parts = append(parts, fmt.Sprintf("%.1f single checks per coalesced SpiceDB call", m.checkItems/m.checkCalls))
	}
	if m.requests > 0 {
		parts = append(parts, fmt.Sprintf("over 10 ms inside authzd: %.2f%% of requests", 100*(1-m.requestsFast/m.requests)))
	}
	for _, src := range []string{"cache", "mirror", "spicedb"} {
		if n := m.decideN[src]; n > 0 {
			parts = append(parts, fmt.Sprintf("%.2f%% of %.0f decisions from %s", 100*(1-m.decideFast[src]/n), n, src))
		}
	}
	if m.waitN > 0 {
		parts = append(parts, fmt.Sprintf("%.2f%% of waits for the audit row", 100*(1-m.waitFast/m.waitN)))
	}
	if m.commits > 0 {
		parts = append(parts, fmt.Sprintf("%.2f%% of audit commits", 100*(1-m.commitsFast/m.commits)))
	}
	if m.heapInuse > 0 {
		parts = append(parts, fmt.Sprintf("%.0f GC cycles, heap in use %.0f MB at the end", m.gcCycles, m.heapInuse/(1<<20)))
	}
	return strings.Join(parts, "; ")
}

// walStats is the Postgres server's WAL flushes (pg_stat_wal, PostgreSQL 14
// and later): how many, and with track_wal_io_timing on (scripts/setup-postgres.sh
// sets it) how long they took. It covers the whole server, SpiceDB's commits
// included, and backends report their counters at transaction end or within
// about a second, so a run's numbers are approximate at its edges. It shows
// whether a run's slow audit commits were slow flushes: every commit that
// answers a decision waits for one.
type walStats struct {
	syncs  int64
	millis float64
	ok     bool
}

// readWAL reads the counters; a server without the view gives a zero value,
// which prints nothing.
func readWAL(ctx context.Context, db *pgxpool.Pool) walStats {
	var w walStats
	w.ok = db.QueryRow(ctx, "SELECT wal_sync, wal_sync_time FROM pg_stat_wal").Scan(&w.syncs, &w.millis) == nil
	return w
}

func (w walStats) sub(o walStats) walStats {
	return walStats{syncs: w.syncs - o.syncs, millis: w.millis - o.millis, ok: w.ok && o.ok}
}

func (w walStats) String() string {
	switch {
	case !w.ok || w.syncs <= 0:
		return ""
	case w.millis <= 0:
		return fmt.Sprintf("WAL flushed %d times (whole server; track_wal_io_timing off)", w.syncs)
	default:
		return fmt.Sprintf("WAL flushed %d times, %.2f ms each (whole server)", w.syncs, w.millis/float64(w.syncs))
	}
}
