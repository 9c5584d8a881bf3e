package app_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkCheckHit is the facade's own path on a decision-cache hit, the
// whole of it in one process: HTTP over loopback, the service token, the
// cache, the durable chained audit row in a real Postgres (embedded SpiceDB on
// Postgres behind it, asked only while warming). It is where authzd's CPU per
// check outside SpiceDB's walks is measured and profiled quickly:
//
//	go test -run '^$' -bench CheckHit -benchtime 20000x -cpuprofile cpu.out ./cmd/authzd/app
//
// ns/op is wall time per check with 32 callers; cpu-µs/op is this process's
// CPU per check (authzd and its callers' HTTP client; Postgres and SpiceDB's
// walks are elsewhere or absent), and allocs/op counts the client's too.
func BenchmarkCheckHit(b *testing.B) {
	h := mustStart(b, "postgres")
	const users = 64
	h.admin("PUT", "/v1/partners/p1", "", 200)
	h.admin("PUT", "/v1/tenants/t1", `{"partner_id":"p1"}`, 200)
	h.admin("PUT", "/v1/tenants/t1/roles/ops", `{"name":"ops","module_permissions":["scaibunker:create"]}`, 200)
	var tok string
	for i := range users {
		tok = token(h.admin("PUT", fmt.Sprintf("/v1/tenants/t1/roles/ops/members/u%d", i), "", 200))
	}
	// An unscoped token and one that reaches only t1: the tenant guard's cost
	// is the difference between the two.
	for _, kind := range []struct{ name, body string }{
		{"unscoped", `{"name":"bench","scopes":["check"]}`},
		{"tenant", `{"name":"bench-t1","scopes":["check"],"tenants":["t1"]}`},
	} {
		b.Run(kind.name, func(b *testing.B) { checkHit(b, h, kind.body, tok, users) })
	}
}

func checkHit(b *testing.B, h *harness, tokenBody, tok string, users int) {
	created := h.admin("POST", "/v1/tokens", tokenBody, 201)
	secret, _ := created.body["token"].(string)
	bodies := make([][]byte, users)
	for i := range users {
		// Warm: the token's check waits for the cache to have the writes, the tokenless one fills it.
		h.do("POST", "/v1/permissions/check", secret, checkBody("t1", fmt.Sprint("u", i), "scaibunker:create", tok))
		bodies[i] = []byte(checkBody("t1", fmt.Sprint("u", i), "scaibunker:create", ""))
		h.do("POST", "/v1/permissions/check", secret, string(bodies[i]))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	hits := func() float64 { return metricValue(b, h.url, "authzd_cache_hits_total") }
	before := hits()
	b.SetParallelism(16)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			req, _ := http.NewRequest("POST", h.url+"/v1/permissions/check", bytes.NewReader(bodies[r.IntN(users)]))
			req.Header.Set("Authorization", "Bearer "+secret)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Contains(raw, []byte(`"allowed":true`)) {
				b.Errorf("check: %d %s", resp.StatusCode, raw)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	// A warming fill can be dropped (a late change voided it), so each user's first check may miss once.
	if got := hits() - before; got < float64(b.N-users) {
		b.Fatalf("%v of %d checks were cache hits: this benchmark measures the hit path", got, b.N)
	}
}

// processCPU is the CPU time this process has used (user and system): the
// server's and the callers' (Postgres is another process).
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// metricValue reads one unlabelled sample of authzd's /metrics.
func metricValue(tb testing.TB, url, name string) float64 {
	tb.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	tb.Fatalf("no metric %s in /metrics", name)
	return 0
}
