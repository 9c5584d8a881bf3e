package app_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

type shadowGroup struct {
	tenant, key     string
	legacy, allowed bool
}

// TestShadow: legacy_allowed never changes an answer, with the decision
// cache on and off, on single and bulk checks; the report counts exactly the
// shadowed checks of its window and groups the disagreements.
func TestShadow(t *testing.T) {
	for _, cache := range []string{"on", "off"} {
		t.Run("cache "+cache, func(t *testing.T) {
			seed := rand.Uint64()
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 0))
			a, _ := apptest.MustStartWith(t, "memory", func(c *app.Config) { c.DecisionCache = cache })
			h := &harness{t: t, url: a.URL, dbURL: a.DatabaseURL, adminToken: a.AdminToken}
			checks, tok := worldByPuts(t, h, rng)

			// ask runs n random checks, each once without and once with a random
			// legacy answer, and returns what the report should count.
			ask := func(n int) (int, int, map[shadowGroup]int) {
				agreed, groups := 0, map[shadowGroup]int{}
				for i := range n {
					body := withToken(checks[rng.IntN(len(checks))], tok)
					want := h.check(body)
					legacy := rng.IntN(2) == 0
					var b map[string]any
					_ = json.Unmarshal([]byte(body), &b)
					b["legacy_allowed"] = legacy
					if i%2 == 0 {
						sb, _ := json.Marshal(b)
						if got := h.check(string(sb)); got != want {
							t.Fatalf("seed %d: %s with legacy_allowed %v answered %v, without %v", seed, body, legacy, got, want)
						}
					} else {
						sb, _ := json.Marshal(map[string]any{"items": []any{b}})
						r := h.admin("POST", "/v1/permissions/check_bulk", string(sb), 200)
						res, _ := r.body["results"].([]any)
						if len(res) != 1 || res[0].(map[string]any)["allowed"] != want {
							t.Fatalf("seed %d: bulk %s with legacy_allowed %v answered %s, the check %v", seed, body, legacy, r.raw, want)
						}
					}
					if legacy == want {
						agreed++
					} else {
						groups[shadowGroup{b["tenant_id"].(string), b["permission"].(string), legacy, want}]++
					}
				}
				return n, agreed, groups
			}
			report := func(since, until time.Time) response {
				q := url.Values{"since": {since.UTC().Format(time.RFC3339Nano)}, "until": {until.UTC().Format(time.RFC3339Nano)}, "limit": {"1000"}}
				return h.admin("GET", "/v1/shadow/report?"+q.Encode(), "", 200)
			}
			verify := func(r response, checks, agreed int, groups map[shadowGroup]int) {
				t.Helper()
				if r.body["checks"] != float64(checks) || r.body["agreed"] != float64(agreed) {
					t.Fatalf("seed %d: report %s; want %d checks, %d agreed", seed, r.raw, checks, agreed)
				}
				ds, _ := r.body["disagreements"].([]any)
				if len(ds) != len(groups) {
					t.Fatalf("seed %d: %d disagreement groups, want %d: %s", seed, len(ds), len(groups), r.raw)
				}
				last := -1.0
				for _, d := range ds {
					g := d.(map[string]any)
					key := shadowGroup{g["tenant_id"].(string), g["permission"].(string), g["legacy_allowed"].(bool), g["allowed"].(bool)}
					ex, _ := g["examples"].([]any)
					if g["count"] != float64(groups[key]) || len(ex) != min(3, groups[key]) || g["first_at"] == "" {
						t.Fatalf("seed %d: group %v counted %v, want %d: %s", seed, key, g["count"], groups[key], r.raw)
					}
					if last >= 0 && g["count"].(float64) > last {
						t.Fatalf("seed %d: groups not largest first: %s", seed, r.raw)
					}
					last = g["count"].(float64)
				}
			}
			t0 := time.Now()
			n1, a1, g1 := ask(40)
			time.Sleep(10 * time.Millisecond)
			t1 := time.Now()
			time.Sleep(10 * time.Millisecond)
			n2, a2, g2 := ask(30)
			t2 := time.Now()
			verify(report(t0, t1), n1, a1, g1)
			verify(report(t1, t2), n2, a2, g2)
			all := map[shadowGroup]int{}
			for _, g := range []map[shadowGroup]int{g1, g2} {
				for k, v := range g {
					all[k] += v
				}
			}
			verify(report(t0, t2), n1+n2, a1+a2, all)

			for _, bad := range []string{`"yes"`, `1`, `null`} {
				body := strings.TrimSuffix(checks[0], "}") + `,"legacy_allowed":` + bad + `}`
				r := h.do("POST", "/v1/permissions/check", h.adminToken, body)
				if bad == "null" { // JSON null is the field's absence
					if r.status != 200 {
						t.Fatalf("legacy_allowed null: %d %s", r.status, r.raw)
					}
					continue
				}
				if r.status != 400 || !strings.Contains(r.raw, "legacy_allowed") {
					t.Fatalf("legacy_allowed %s: %d %s", bad, r.status, r.raw)
				}
				r = h.do("POST", "/v1/permissions/check_bulk", h.adminToken, `{"items":[`+body+`]}`)
				if r.status != 400 || !strings.Contains(r.raw, "legacy_allowed") {
					t.Fatalf("bulk legacy_allowed %s: %d %s", bad, r.status, r.raw)
				}
			}
			if r := h.do("GET", "/v1/shadow/report", h.adminToken, ""); r.status != 400 || !strings.Contains(r.raw, "since") {
				t.Fatalf("report without since: %d %s", r.status, r.raw)
			}
			if r := h.do("GET", fmt.Sprintf("/v1/shadow/report?since=%s&limit=0", url.QueryEscape(t0.Format(time.RFC3339))), h.adminToken, ""); r.status != 400 {
				t.Fatalf("report with limit 0: %d %s", r.status, r.raw)
			}
		})
	}
}
