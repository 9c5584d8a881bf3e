package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scailabs/authzd/internal/pgtest"
	"github.com/scailabs/authzd/schema"
)

// TestInterleavedDecisionsMatchSpiceDB: lone decisions (one caller, so each
// commits on its own) between bursts of concurrent ones (batched, each batch
// sent while the one before it commits) all answer what SpiceDB answers fully
// consistent, and each answer has exactly one audit row saying the same.
// Nothing is written during the checks, so fully consistent is the revision
// the answers were made at. It runs authzd as the benchmark does: its own
// process in external mode against a SpiceDB server, the decision cache on.
func TestInterleavedDecisionsMatchSpiceDB(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a SpiceDB server and authzd; skipped with -short")
	}
	pgtest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg, err := parseFlags([]string{"-smoke", "-postgres", pgtest.ServerURL()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{cfg: cfg, log: io.Discard}
	model, err := schema.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range model.Keys {
		b.keys = append(b.keys, k.Key)
	}
	spiceBin, err := spicedbBinary(ctx, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	dbs, err := newDatabases(ctx, cfg.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dbs.drop(context.Background()) }()
	if err := b.startSpiceDB(ctx, spiceBin, dbs); err != nil {
		t.Fatal(err)
	}
	defer b.spice.Stop()
	if b.direct, err = b.spice.Client(); err != nil {
		t.Fatal(err)
	}
	defer b.direct.Close()
	dir := t.TempDir()
	bin, err := authzdBinary(ctx, dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	admin := "test-admin-" + randomHex(8)
	srv, err := b.openApp(ctx, bin, dbs.url("audit"), admin, false, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop() }()
	api := &apiClient{base: srv.URL, http: newHTTPClient(16), adminToken: admin, srv: srv}
	if api.checkToken, err = api.createToken(ctx, "check", "check"); err != nil {
		t.Fatal(err)
	}
	if api.provisionToken, err = api.createToken(ctx, "provision", "provision"); err != nil {
		t.Fatal(err)
	}
	b.audited, b.unaudited = api, api
	d := newDataset("small", 3, 1, b.keys)
	p := provisioner{d: d, api: api}
	if st := combine(p.platform(ctx, 4, nil), p.tenants(ctx, 4, nil)); st.Errors > 0 {
		t.Fatalf("provisioning: %d errors, first %v", st.Errors, st.FirstErr)
	}
	if err := b.sentinel(ctx, d); err != nil {
		t.Fatal(err)
	}

	type answer struct {
		cc       checkCase
		allowed  bool
		decision string
	}
	check := func(cc checkCase) (answer, error) {
		var buf bytes.Buffer
		if err := api.send(ctx, "POST", "/v1/permissions/check", api.checkToken, checkBody(cc), &buf); err != nil {
			return answer{}, err
		}
		var a struct {
			Allowed    bool   `json:"allowed"`
			DecisionID string `json:"decision_id"`
		}
		if err := json.Unmarshal(buf.Bytes(), &a); err != nil {
			return answer{}, err
		}
		return answer{cc: cc, allowed: a.Allowed, decision: a.DecisionID}, nil
	}
	var mu sync.Mutex
	var answers []answer
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	for round := range 4 {
		// Lone: one caller, each decision its own commit.
		for range 20 {
			a, err := check(d.draw(rng))
			if err != nil {
				t.Fatalf("round %d, lone check: %v", round, err)
			}
			answers = append(answers, a)
		}
		// A burst: 8 callers at once.
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			seed := rng.Uint64()
			wg.Go(func() {
				r := rand.New(rand.NewPCG(seed, uint64(w)))
				for range 25 {
					a, err := check(d.draw(r))
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					answers = append(answers, a)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d, burst: %v", round, err)
		}
	}

	audit, err := pgxpool.New(ctx, dbs.url("audit"))
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	for _, a := range answers {
		req := directRequest(a.cc)
		req.Consistency = &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
		resp, err := b.direct.CheckPermission(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want := resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
		if a.allowed != want {
			t.Errorf("%s %s %s: authzd answered allowed=%v, SpiceDB fully consistent %v", a.cc.tenant, a.cc.user, a.cc.key, a.allowed, want)
		}
		var rows []string
		r, err := audit.Query(ctx, "SELECT decision FROM audit_events WHERE decision_id = $1", a.decision)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var s string
			if err := r.Scan(&s); err != nil {
				t.Fatal(err)
			}
			rows = append(rows, s)
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		if wantRow := map[bool]string{true: "allowed", false: "denied"}[a.allowed]; len(rows) != 1 || rows[0] != wantRow {
			t.Errorf("decision %s (allowed=%v): audit rows %v, want one %q", a.decision, a.allowed, rows, wantRow)
		}
	}
	t.Logf("%d answers (4 rounds of 20 lone and 200 concurrent) match SpiceDB fully consistent and their audit rows", len(answers))
}
