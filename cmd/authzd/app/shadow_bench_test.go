package app_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestShadowBench measures checks/s with legacy_allowed against without, on
// decision-cache hits (the path where the audit row is most of the cost),
// in interleaved rounds of AUTHZ_SHADOW_BENCH_CHECKS checks at 16 callers:
//
//	AUTHZ_SHADOW_BENCH_CHECKS=20000 go test -count=1 -run TestShadowBench -v ./cmd/authzd/app
func TestShadowBench(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("AUTHZ_SHADOW_BENCH_CHECKS"))
	if n <= 0 {
		t.Skip("set AUTHZ_SHADOW_BENCH_CHECKS to run")
	}
	h := mustStart(t, "postgres")
	const users = 64
	h.admin("PUT", "/v1/partners/p1", "", 200)
	h.admin("PUT", "/v1/tenants/t1", `{"partner_id":"p1"}`, 200)
	h.admin("PUT", "/v1/tenants/t1/roles/ops", `{"name":"ops","module_permissions":["scaibunker:create"]}`, 200)
	var tok string
	for i := range users {
		tok = token(h.admin("PUT", fmt.Sprintf("/v1/tenants/t1/roles/ops/members/u%d", i), "", 200))
	}
	plain, shadowed := make([][]byte, users), make([][]byte, users)
	for i := range users {
		h.check(checkBody("t1", fmt.Sprint("u", i), "scaibunker:create", tok))
		plain[i] = []byte(checkBody("t1", fmt.Sprint("u", i), "scaibunker:create", ""))
		shadowed[i] = append(bytes.TrimSuffix(plain[i], []byte("}")), []byte(fmt.Sprintf(`,"legacy_allowed":%v}`, i%2 == 0))...)
		h.check(string(plain[i]))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	run := func(bodies [][]byte) float64 {
		var next atomic.Int64
		var wg sync.WaitGroup
		began := time.Now()
		for range 16 {
			wg.Go(func() {
				for i := next.Add(1); i <= int64(n); i = next.Add(1) {
					req, _ := http.NewRequest("POST", h.url+"/v1/permissions/check", bytes.NewReader(bodies[i%users]))
					req.Header.Set("Authorization", "Bearer "+h.adminToken)
					resp, err := client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					raw, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || !bytes.Contains(raw, []byte(`"allowed":true`)) {
						t.Errorf("check: %d %s", resp.StatusCode, raw)
						return
					}
				}
			})
		}
		wg.Wait()
		return float64(n) / time.Since(began).Seconds()
	}
	var without, with []float64
	for range 3 {
		without = append(without, run(plain))
		with = append(with, run(shadowed))
	}
	slices.Sort(without)
	slices.Sort(with)
	t.Logf("shadow bench: %d checks a round, 16 callers, cache hits: without legacy_allowed %.0f/s (rounds %.0f), with %.0f/s (rounds %.0f): %.3fx",
		n, without[1], without, with[1], with, with[1]/without[1])
}
