package app_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

// benchWorld writes the benchmark's world (cmd/authzbench's data set shape:
// tenants over partners, 3 custom roles of 5 keys with 10 members each per
// tenant, one super admin, an admin per partner) as a record document.
func benchWorld(prefix string, tenants, partners int, keys []string) (string, int) {
	var b strings.Builder
	n := 0
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...); n++ }
	for p := range partners {
		line(`{"kind":"partner","partner_id":"%s-p%03d"}`, prefix, p)
	}
	line(`{"kind":"super_admin","user_id":"%s-root"}`, prefix)
	for p := range partners {
		line(`{"kind":"partner_admin","partner_id":"%s-p%03d","user_id":"%s-p%03d-admin"}`, prefix, p, prefix, p)
	}
	for t := range tenants {
		line(`{"kind":"tenant","tenant_id":"%s-t%05d","partner_id":"%s-p%03d"}`, prefix, t, prefix, t%partners)
	}
	for t := range tenants {
		for r := range 3 {
			var ks []string
			for j := range 5 {
				ks = append(ks, strconv.Quote(keys[(t*7+r*5+j)%len(keys)]))
			}
			line(`{"kind":"role","tenant_id":"%s-t%05d","role_id":"role%d","name":"bench role %d","module_permissions":[%s]}`,
				prefix, t, r, r, strings.Join(ks, ","))
		}
	}
	for t := range tenants {
		for r := range 3 {
			for m := range 10 {
				line(`{"kind":"member","tenant_id":"%s-t%05d","role_id":"role%d","user_id":"%s-t%05d-u%02d"}`, prefix, t, r, prefix, t, r*10+m)
			}
		}
	}
	return b.String(), n
}

// heapSampler tracks the peak of the heap live after each collection
// (objects bytes would count garbage too: authzd runs with
// AUTHZ_GC_PERCENT 400, so the heap grows to five times what is live).
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done sync.WaitGroup
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if v := heapObjects(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) end() uint64 { close(h.stop); h.done.Wait(); return h.peak.Load() }

// TestImportBench measures importing the benchmark's world into a fresh
// authzd (embedded SpiceDB on Postgres, the decision cache on) against
// provisioning part of it through the PUT routes on the same authzd, 8 at a
// time. It runs when AUTHZ_IMPORT_BENCH_TENANTS is set (e.g. 1000);
// AUTHZ_IMPORT_BENCH_WRITERS sets AUTHZ_IMPORT_WRITERS, AUTHZ_IMPORT_BENCH_CACHE
// AUTHZ_DECISION_CACHE, and AUTHZ_IMPORT_BENCH_BATCHES lists every batch:
//
//	AUTHZ_IMPORT_BENCH_TENANTS=1000 go test -count=1 -run TestImportBench -v ./cmd/authzd/app
func TestImportBench(t *testing.T) {
	tenants, _ := strconv.Atoi(os.Getenv("AUTHZ_IMPORT_BENCH_TENANTS"))
	if tenants <= 0 {
		t.Skip("set AUTHZ_IMPORT_BENCH_TENANTS to run")
	}
	writers, _ := strconv.Atoi(os.Getenv("AUTHZ_IMPORT_BENCH_WRITERS"))
	if writers <= 0 {
		writers = app.DefaultConfig().ImportWriters
	}
	a, _ := apptest.MustStartWith(t, "postgres", func(c *app.Config) {
		c.ImportWriters = writers
		if v := os.Getenv("AUTHZ_IMPORT_BENCH_CACHE"); v != "" {
			c.DecisionCache = v // "off" leaves the mirror out of the heap figure
		}
	})
	h := &harness{t: t, url: a.URL, dbURL: a.DatabaseURL, adminToken: a.AdminToken}
	keysAnswer := h.admin("GET", "/v1/permissions/keys", "", 200)
	var keys []string
	for _, k := range keysAnswer.body["keys"].([]any) {
		keys = append(keys, k.(map[string]any)["key"].(string))
	}
	partners := max(1, tenants/10)
	doc, records := benchWorld("imp", tenants, partners, keys)
	relationships := 1 + 2*partners + tenants*(2+3*16)

	runtime.GC()
	idle := heapObjects()
	runtime.GC()
	sampler := startHeapSampler()
	began := time.Now()
	r := h.importDoc(doc, "")
	importTime := time.Since(began)
	peak := sampler.end()
	if r.status != 200 || counts(r)["created"] != float64(records) {
		t.Fatalf("import: %d %s", r.status, truncateRaw(r.raw))
	}
	var first, last time.Time
	if conn, err := pgx.Connect(context.Background(), h.dbURL); err == nil {
		_ = conn.QueryRow(context.Background(), `SELECT min(occurred_at), max(occurred_at) FROM audit_events WHERE action = 'import.batch'`).Scan(&first, &last)
		if os.Getenv("AUTHZ_IMPORT_BENCH_BATCHES") != "" {
			rows, _ := conn.Query(context.Background(), `SELECT occurred_at, json_array_length(details->'changes'), details->'changes'->>0 FROM audit_events WHERE action = 'import.batch' ORDER BY occurred_at`)
			for rows.Next() {
				var at time.Time
				var n int
				var c0 string
				_ = rows.Scan(&at, &n, &c0)
				t.Logf("    batch at %.2fs: %d changes, %.40s", at.Sub(began).Seconds(), n, c0)
			}
			rows.Close()
		}
		conn.Close(context.Background())
	}
	t.Logf("  batches landed from %.2fs to %.2fs after the request began", first.Sub(began).Seconds(), last.Sub(began).Seconds())
	began = time.Now()
	again := h.importDoc(doc, "")
	noop := time.Since(began)
	if again.status != 200 || counts(again)["created"] != 0 {
		t.Fatalf("re-import: %d %s", again.status, truncateRaw(again.raw))
	}
	began = time.Now()
	out, _ := h.export("")
	exportTime := time.Since(began)
	if n := strings.Count(out, "\n"); n != records {
		t.Fatalf("export has %d records, want %d", n, records)
	}

	// The PUT row: a slice of the same world's writes under another prefix,
	// one tenant per worker as cmd/authzbench provisions.
	putTenants := max(1, tenants/20)
	putDoc, putRecords := benchWorld("put", putTenants, max(1, putTenants/10), keys)
	_ = putDoc
	var wg sync.WaitGroup
	var puts atomic.Int64
	jobs := make(chan int)
	began = time.Now()
	for range 8 {
		wg.Go(func() {
			for ti := range jobs {
				tid := fmt.Sprintf("put-t%05d", ti)
				h.admin("PUT", "/v1/tenants/"+tid, `{"partner_id":"put-p000"}`, 200)
				puts.Add(1)
				for r := range 3 {
					var ks []string
					for j := range 5 {
						ks = append(ks, strconv.Quote(keys[(ti*7+r*5+j)%len(keys)]))
					}
					h.admin("PUT", fmt.Sprintf("/v1/tenants/%s/roles/role%d", tid, r),
						fmt.Sprintf(`{"name":"bench role %d","module_permissions":[%s]}`, r, strings.Join(ks, ",")), 200)
					puts.Add(1)
					for m := range 10 {
						h.admin("PUT", fmt.Sprintf("/v1/tenants/%s/roles/role%d/members/%s-u%02d", tid, r, tid, r*10+m), "", 200)
						puts.Add(1)
					}
				}
			}
		})
	}
	h.admin("PUT", "/v1/partners/put-p000", "", 200)
	for ti := range putTenants {
		jobs <- ti
	}
	close(jobs)
	wg.Wait()
	putTime := time.Since(began)
	putRate := float64(puts.Load()) / putTime.Seconds()
	putsForWorld := 1 + 2*partners + tenants*34
	ratio := float64(putsForWorld) / putRate / importTime.Seconds()
	t.Logf("import bench: AUTHZ_IMPORT_WRITERS %d, %d tenants, %d records, %d relationships, %d bytes", writers, tenants, records, relationships, len(doc))
	t.Logf("  import       %8.2fs  %8.0f records/s  batches %v", importTime.Seconds(), float64(records)/importTime.Seconds(), counts(r)["batches"])
	t.Logf("  no-op import %8.2fs", noop.Seconds())
	t.Logf("  export       %8.2fs  %d bytes", exportTime.Seconds(), len(out))
	t.Logf("  heap         %8.1f MiB peak live above idle (%0.1f MiB idle; the whole process: authzd, embedded SpiceDB, the test's client and document)",
		float64(peak-min(peak, idle))/(1<<20), float64(idle)/(1<<20))
	t.Logf("  PUTs         %8.2fs for %d PUTs (%d tenants' records: %d), %.0f PUT/s at 8 concurrent", putTime.Seconds(), puts.Load(), putTenants, putRecords, putRate)
	t.Logf("  ratio        %8.1fx  (%d PUTs at %.0f/s = %.1fs, vs the import's %.2fs)", ratio, putsForWorld, putRate, float64(putsForWorld)/putRate, importTime.Seconds())
}
