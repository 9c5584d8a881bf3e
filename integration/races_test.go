package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The write races: replace-style writes (role key set, resource owner, tenant partner) sent at the
// same moment by several callers, split across two authzd replicas on the same databases, must end
// with exactly one caller's value; offboarding racing with writes must leave nothing for a tenant
// re-created under the same id. Each round reads the state back through the API with the token of a
// write made after every racer answered. AUTHZ_TEST_RACE_SEED reproduces a run's choices,
// AUTHZ_TEST_RACE_ROUNDS sets the rounds per scenario.

const (
	envRaceSeed   = "AUTHZ_TEST_RACE_SEED"
	envRaceRounds = "AUTHZ_TEST_RACE_ROUNDS"
)

// startReplica runs a second authzd, as its own process, on a's databases (audit and SpiceDB): the
// shape of a deployment with several replicas. With an embedded SpiceDB each replica runs its own
// SpiceDB on the shared datastore; with an external one both talk to it. a must not use the memory
// datastore, which lives inside one process.
func startReplica(tb testing.TB, a *testApp) *testApp {
	tb.Helper()
	cfg := a.Config
	env := map[string]string{
		"AUTHZ_DATABASE_URL": cfg.DatabaseURL,
		"AUTHZ_ADMIN_TOKEN":  cfg.AdminToken,
		"AUTHZ_LOG_LEVEL":    "warn",
	}
	switch {
	case cfg.SpiceDBEndpoint != "":
		env["AUTHZ_SPICEDB_ENDPOINT"], env["AUTHZ_SPICEDB_TOKEN"] = cfg.SpiceDBEndpoint, cfg.SpiceDBToken
		env["AUTHZ_SPICEDB_INSECURE"] = strconv.FormatBool(cfg.SpiceDBInsecure)
	case cfg.SpiceDBDatastore == "memory":
		tb.Skip("replicas need a shared SpiceDB datastore; this run uses the memory datastore")
	default:
		env["AUTHZ_SPICEDB_DATASTORE"], env["AUTHZ_SPICEDB_DATABASE_URL"] = cfg.SpiceDBDatastore, cfg.SpiceDBDatabaseURL
	}
	p := startAuthzdProcess(tb, env)
	r := *a
	r.api = newAPI(p.URL, cfg.AdminToken)
	r.api.calls = a.api.calls // one call log for the deployment, reconciled against its one audit table
	r.Main, r.URL = nil, p.URL
	return &r
}

// raceSetup returns the seed (printed, so a failure can be replayed) and the rounds per scenario.
func raceSetup(tb testing.TB) (uint64, int) {
	tb.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(envRaceSeed); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			tb.Fatalf("%s=%q: %v", envRaceSeed, v, err)
		}
		seed = s
	}
	rounds := 12
	if v := os.Getenv(envRaceRounds); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			tb.Fatalf("%s=%q: want a positive number", envRaceRounds, v)
		}
		rounds = n
	}
	tb.Logf("race seed %d, %d rounds per scenario (replay: %s=%d)", seed, rounds, envRaceSeed, seed)
	return seed, rounds
}

// racer is one concurrent call of a round.
type racer struct {
	via    *api
	method string
	path   string
	body   any
	value  string // what this call sets, for the report
}

// putRacers has n racers, alternating between the two authzds of via, PUT path with {field: value},
// each a different one of values in random order; it returns them and the values they set.
func putRacers(rnd *rand.Rand, via []*api, n int, path, field string, values []string) ([]racer, []string) {
	perm := rnd.Perm(len(values))
	racers := make([]racer, n)
	want := make([]string, n)
	for i := range racers {
		want[i] = values[perm[i]]
		racers[i] = racer{via: via[i%2], method: http.MethodPut, path: path, body: map[string]string{field: want[i]}, value: want[i]}
	}
	return racers, want
}

// runRace releases every racer at once and returns their replies in order.
func runRace(tb testing.TB, racers []racer) []reply {
	tb.Helper()
	out := make([]reply, len(racers))
	errs := make([]error, len(racers))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i], _, errs[i] = r.via.request(context.Background(), r.method, r.path, r.body)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("racer %d (%s %s): %v", i, racers[i].method, racers[i].path, err)
		}
	}
	return out
}

// mustAllOK fails the test unless every racer answered 200.
func mustAllOK(tb testing.TB, replies []reply) {
	tb.Helper()
	for _, r := range replies {
		if r.Status != http.StatusOK {
			tb.Fatalf("racer: want 200: %s", r)
		}
	}
}

// barrier is a write made after every racer answered: its token is at least as fresh as all of them.
func barrier(tb testing.TB, a *api) string {
	tb.Helper()
	return a.mustWrite(tb, http.MethodPut, superAdminPath("race-barrier"), nil)
}

func TestWriteRaces(t *testing.T) {
	a := startApp(t)
	b := startReplica(t, a)
	seed, rounds := raceSetup(t)
	rnd := rand.New(rand.NewPCG(seed, 0x5eed))
	via := []*api{a.as("racer-a"), b.as("racer-b")}
	ops := a.as("race-ops")

	var keysAnswer struct {
		Keys []struct {
			Key string `json:"key"`
		} `json:"keys"`
	}
	ops.mustGet(t, "/v1/permissions/keys", &keysAnswer)
	var catalogue []string
	for _, k := range keysAnswer.Keys {
		catalogue = append(catalogue, k.Key)
	}
	if len(catalogue) < 4 {
		t.Fatalf("key catalogue too small to race on: %v", catalogue)
	}
	randomKeys := func() []string {
		var ks []string
		for _, k := range catalogue {
			if rnd.IntN(2) == 0 {
				ks = append(ks, k)
			}
		}
		if len(ks) == 0 {
			ks = append(ks, catalogue[rnd.IntN(len(catalogue))])
		}
		slices.Sort(ks)
		return ks
	}

	partners := []string{"rp-a", "rp-b", "rp-c"}
	for _, p := range partners {
		ops.mustPartner(t, p)
		ops.mustWrite(t, http.MethodPut, partnerAdminPath(p, "adm-"+p), nil)
	}
	ops.mustTenant(t, "tr", "rp-a")
	owners := []string{"o-0", "o-1", "o-2", "sa:o-3"}
	ops.mustRole(t, "tr", "runners", "scaibunker:execute", "scaibunker:create")
	for _, o := range owners {
		ops.mustMember(t, "tr", "runners", o)
	}
	ops.mustRole(t, "tr", "raced", catalogue[0])
	ops.mustMember(t, "tr", "raced", "role-member")

	const writers = 3
	mixed := 0
	report := func(format string, args ...any) {
		mixed++
		t.Errorf("seed %d: "+format, append([]any{seed}, args...)...)
	}

	t.Run("RoleKeys", func(t *testing.T) {
		for round := range rounds {
			racers := make([]racer, writers)
			sets := make([]string, writers)
			for i := range racers {
				ks := randomKeys()
				sets[i] = strings.Join(ks, ",")
				racers[i] = racer{via: via[i%2], method: http.MethodPut, path: rolePath("tr", "raced"),
					body: roleBody{Name: fmt.Sprintf("round %d writer %d", round, i), ModulePermissions: ks}, value: sets[i]}
			}
			mustAllOK(t, runRace(t, racers))
			token := barrier(t, ops)

			var got struct {
				ModulePermissions []string `json:"module_permissions"`
			}
			via[round%2].mustGet(t, rolePath("tr", "raced"), &got)
			stored := strings.Join(got.ModulePermissions, ",")
			held := strings.Join(sorted(via[(round+1)%2].mustPermissions(t, "tr", "role-member", token)), ",")
			if !slices.Contains(sets, stored) {
				report("round %d: role holds %q, which no writer asked for (writers: %q)", round, stored, sets)
			}
			if held != stored {
				report("round %d: the member holds %q but the role reads %q", round, held, stored)
			}
		}
	})

	t.Run("ResourceOwner", func(t *testing.T) {
		for round := range rounds {
			// Even rounds race on a new resource (no owner yet), odd ones replace an existing owner.
			id := "b-shared"
			if round%2 == 0 {
				id = fmt.Sprintf("b-new-%d", round)
			}
			racers, want := putRacers(rnd, via, writers, resourcePath("tr", "bunker", id), "owner_id", owners)
			mustAllOK(t, runRace(t, racers))
			token := barrier(t, ops)

			var allowed []string
			for _, o := range owners {
				_, ans, err := via[round%2].check(context.Background(), checkRequest{TenantID: "tr", UserID: o,
					Permission: "scaibunker:execute", Resource: &resourceRef{Type: "bunker", ID: id}, ConsistencyToken: token})
				if err != nil || ans.Allowed == nil {
					t.Fatalf("check owner %s of %s: %v", o, id, err)
				}
				if *ans.Allowed {
					allowed = append(allowed, o)
				}
			}
			if len(allowed) != 1 || !slices.Contains(want, allowed[0]) {
				report("round %d: bunker %s is executable by owners %v, want exactly one of %v", round, id, allowed, want)
			}
		}
	})

	t.Run("TenantPartner", func(t *testing.T) {
		for round := range rounds {
			// Even rounds race on creating a new tenant, odd ones move an existing one.
			tenant := "t-moving"
			if round%2 == 0 {
				tenant = fmt.Sprintf("t-new-%d", round)
			}
			racers, want := putRacers(rnd, via, writers, tenantPath(tenant), "partner_id", partners)
			mustAllOK(t, runRace(t, racers))
			token := barrier(t, ops)

			var under []string
			for _, p := range partners {
				if len(via[round%2].mustPermissions(t, tenant, "adm-"+p, token)) > 0 {
					under = append(under, p)
				}
			}
			if len(under) != 1 || !slices.Contains(want, under[0]) {
				report("round %d: tenant %s is administered by the admins of partners %v, want exactly one of %v", round, tenant, under, want)
			}
		}
	})

	t.Run("OffboardingThenRecreate", func(t *testing.T) {
		for round := range rounds {
			tenant := fmt.Sprintf("t-off-%d", round)
			ops.mustTenant(t, tenant, "rp-a")
			ops.mustRole(t, tenant, "crew", randomKeys()...)
			ops.mustMember(t, tenant, "crew", "old-member")
			ops.mustMember(t, tenant, "tenant_admin", "old-admin")
			ops.mustResource(t, tenant, "bunker", "b-old", "old-owner")

			// Half the rounds race the offboarding with writes into the tenant, half with its re-creation
			// (whose purge must not spare the old tenant's objects either way).
			racers := []racer{{via: via[round%2], method: http.MethodDelete, path: tenantPath(tenant)}}
			if round%2 == 0 {
				racers = append(racers,
					racer{via: via[(round+1)%2], method: http.MethodPut, path: rolePath(tenant, "crew"), body: roleBody{Name: "crew", ModulePermissions: randomKeys()}},
					racer{via: via[round%2], method: http.MethodPut, path: memberPath(tenant, "crew", "late-member")},
					racer{via: via[(round+1)%2], method: http.MethodPut, path: memberPath(tenant, "tenant_user", "late-user")},
					racer{via: via[round%2], method: http.MethodPut, path: resourcePath(tenant, "bunker", "b-late"), body: map[string]string{"owner_id": "late-owner"}},
					racer{via: via[(round+1)%2], method: http.MethodPut, path: rolePath(tenant, "late-role"), body: roleBody{Name: "late", ModulePermissions: randomKeys()}},
				)
			} else {
				racers = append(racers, racer{via: via[(round+1)%2], method: http.MethodPut, path: tenantPath(tenant), body: map[string]string{"partner_id": "rp-b"}})
			}
			for i, r := range runRace(t, racers) {
				if r.Status != http.StatusOK && r.Status != http.StatusNotFound {
					t.Fatalf("round %d racer %d: want 200 or 404: %s", round, i, r)
				}
			}
			if round%2 == 0 {
				ops.mustTenant(t, tenant, "rp-c") // re-created after the race
			} else {
				ops.mustTenant(t, tenant, "rp-b") // exists whichever racer landed last
			}
			// The owners get the bunker keys in the new tenant, so only ownership of the old tenant's
			// resources could still let them in.
			ops.mustRole(t, tenant, "fresh", "scaibunker:create", "scaibunker:execute")
			ops.mustMember(t, tenant, "fresh", "old-owner")
			ops.mustMember(t, tenant, "fresh", "late-owner")
			token := barrier(t, ops)

			api := via[round%2]
			for _, u := range []string{"old-member", "old-admin", "late-member", "late-user"} {
				if held := api.mustPermissions(t, tenant, u, token); len(held) > 0 {
					report("round %d: %s holds %v in the re-created tenant %s", round, u, held, tenant)
				}
			}
			for _, res := range []struct{ id, owner string }{{"b-old", "old-owner"}, {"b-late", "late-owner"}} {
				_, ans, err := api.check(context.Background(), checkRequest{TenantID: tenant, UserID: res.owner,
					Permission: "scaibunker:execute", Resource: &resourceRef{Type: "bunker", ID: res.id}, ConsistencyToken: token})
				if err != nil || ans.Allowed == nil {
					t.Fatalf("check %s: %v", res.id, err)
				}
				if *ans.Allowed {
					report("round %d: %s still runs commands in bunker %s of the re-created tenant %s", round, res.owner, res.id, tenant)
				}
			}
			for _, role := range []string{"crew", "late-role"} {
				if r, _, _ := api.request(context.Background(), http.MethodGet, rolePath(tenant, role), nil); r.Status != http.StatusNotFound {
					report("round %d: role %s of the re-created tenant %s: want 404, got %s", round, role, tenant, r)
				}
			}
		}
	})

	t.Logf("%d inconsistent states in %d rounds per scenario", mixed, rounds)
	if !t.Failed() {
		a.mustReconcileAudit(t)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
