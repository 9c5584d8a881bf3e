package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

const envCluster = "AUTHZ_TEST_CLUSTER" // "0": skip the cluster scenario in the Docker world

// cluster is the deployment of docs/deployment.md in containers on the world's network: SpiceDB nodes
// that dispatch sub-problems to each other, authzd replicas (the authzd image) that reach SpiceDB through
// one DNS name naming every node, and the world's Postgres holding SpiceDB's datastore and the audit log.
type cluster struct {
	d        *dockerWorld
	alias    string // DNS name of every SpiceDB node on the network
	nodes    []testcontainers.Container
	replicas []*clusterReplica
	app      *testApp // the shared call log and the audit database, for reconciliation
}

type clusterReplica struct {
	name string
	c    testcontainers.Container
	api  *api // on the replica's published port, which stays the same across a restart
}

func startCluster(tb testing.TB, w *world, nodes, replicas int) *cluster {
	tb.Helper()
	d := w.docker
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	authzdImage := envOr(envAuthzdImage, defaultAuthzdImage())
	if !imagePresent(ctx, d.cli, authzdImage) {
		tb.Fatalf("no image %s: run `make images`", authzdImage)
	}
	c := &cluster{d: d, alias: "spicedb-" + randomHex(4)}

	_, spiceDB := w.newDatabase(tb, "spicedb")
	auditURL, auditDB := w.newDatabase(tb, "audit")
	env := map[string]string{
		"SPICEDB_DATASTORE_ENGINE":   "postgres",
		"SPICEDB_DATASTORE_CONN_URI": fmt.Sprintf("postgres://postgres:postgres@%s:5432/%s?sslmode=disable", postgresAlias, spiceDB),
	}
	d.mustMigrateSpiceDB(ctx, tb, env)
	key := "it-" + randomHex(16)
	env["SPICEDB_GRPC_PRESHARED_KEY"] = key
	for i := range nodes {
		n, err := testcontainers.Run(ctx, d.spicedbImage,
			testcontainers.WithCmd("serve",
				"--http-enabled=false", "--telemetry-endpoint=", "--skip-release-check",
				"--dispatch-cluster-enabled=true",
				"--dispatch-upstream-addr=dns:///"+c.alias+":50053",
			),
			testcontainers.WithEnv(env),
			testcontainers.WithLabels(runLabels()),
			network.WithNetwork([]string{fmt.Sprintf("%s-%d", c.alias, i), c.alias}, d.network),
			testcontainers.WithWaitStrategy(wait.ForLog("grpc server started serving").WithStartupTimeout(time.Minute)),
		)
		testcontainers.CleanupContainer(tb, n)
		if err != nil {
			tb.Fatalf("spicedb node %d: %v", i, err)
		}
		c.nodes = append(c.nodes, n)
	}

	admin := "it-admin-" + randomHex(16)
	calls := &callLog{}
	for i := range replicas {
		_, port, err := net.SplitHostPort(mustFreeAddr(tb))
		if err != nil {
			tb.Fatal(err)
		}
		name := fmt.Sprintf("authzd-%d", i)
		r, err := testcontainers.Run(ctx, authzdImage,
			testcontainers.WithEnv(map[string]string{
				"AUTHZ_DATABASE_URL":     fmt.Sprintf("postgres://postgres:postgres@%s:5432/%s?sslmode=disable", postgresAlias, auditDB),
				"AUTHZ_ADMIN_TOKEN":      admin,
				"AUTHZ_SPICEDB_ENDPOINT": c.alias + ":50051",
				"AUTHZ_SPICEDB_TOKEN":    key,
				"AUTHZ_SPICEDB_INSECURE": "true",
				"AUTHZ_LOG_LEVEL":        "warn",
			}),
			testcontainers.WithExposedPorts("8080/tcp"),
			withLoopbackPortMap(map[string]string{"8080/tcp": port}),
			testcontainers.WithLabels(runLabels()),
			network.WithNetwork([]string{name}, d.network),
			testcontainers.WithWaitStrategy(wait.ForHTTP("/readyz").WithPort("8080/tcp").WithStartupTimeout(2*time.Minute)),
		)
		testcontainers.CleanupContainer(tb, r)
		if err != nil {
			tb.Fatalf("authzd replica %d: %v", i, err)
		}
		a := newAPI("http://127.0.0.1:"+port, admin)
		a.calls = calls
		c.replicas = append(c.replicas, &clusterReplica{name: name, c: r, api: a})
	}
	pool, err := pgxpool.New(ctx, auditURL+querySep(auditURL)+"pool_max_conns=4")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	c.app = &testApp{api: c.replicas[0].api, Audit: pool, AuditURL: auditURL}
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, r := range c.replicas {
				tb.Logf("%s log:\n%s", r.name, tail(containerLogs(context.Background(), r.c), 4096))
			}
		}
	})
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestCluster runs the cluster picture of docs/deployment.md: 3 SpiceDB nodes with dispatch, 2 authzd
// replicas, one Postgres. Every scenario ends with the audit reconciled against every call.
func TestCluster(t *testing.T) {
	w := mustWorld(t)
	if w.docker == nil {
		t.Skip("the cluster runs in the Docker world only; this is the local world")
	}
	if os.Getenv(envCluster) == "0" {
		t.Skipf("%s=0", envCluster)
	}
	start := time.Now()
	c := startCluster(t, w, 3, 2)
	t.Logf("cluster of 3 SpiceDB nodes and 2 authzd replicas up in %s", time.Since(start).Round(time.Millisecond))
	a, b := c.replicas[0].api.as("ops"), c.replicas[1].api.as("ops")
	a.mustPartner(t, "p")
	a.mustTenant(t, "t", "p")
	tok := a.mustRole(t, "t", "ops", "scaibunker:execute", "scaibunker:create")

	// The schema was written through the first replica a moment ago; checks without a token are
	// answered at a quantized revision that may predate it (see mustSettleSchema).
	mustSettleSchema(t, b, checkRequest{TenantID: "t", UserID: "nobody", Permission: "scaibunker:execute"})

	t.Run("ReadYourWritesAcrossReplicas", func(t *testing.T) {
		// A write through one replica is seen through the other with its zed token, every time, both ways.
		for i := range 40 {
			w, r := a, b
			if i%2 == 1 {
				w, r = b, a
			}
			user := fmt.Sprintf("u%d", i)
			grant := w.mustMember(t, "t", "ops", user)
			r.mustCheck(t, checkRequest{TenantID: "t", UserID: user, Permission: "scaibunker:execute", ConsistencyToken: grant}, true)
			revoke := r.mustWrite(t, http.MethodDelete, memberPath("t", "ops", user), nil)
			w.mustCheck(t, checkRequest{TenantID: "t", UserID: user, Permission: "scaibunker:execute", ConsistencyToken: revoke}, false)
		}
	})

	tok = a.mustMember(t, "t", "ops", "alice")
	checks := freshWhereAllowed([]knownCheck{
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:execute"}, true},
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:create"}, true},
		{checkRequest{TenantID: "t", UserID: "bob", Permission: "scaibunker:execute"}, false},
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaiskills:view"}, false},
	}, tok)
	// Load spread over both replicas.
	load := func(ctx context.Context) []outcome {
		ops := []func(int, *rand.Rand) outcome{knownCheckOp(a, checks), knownCheckOp(b, checks)}
		return runLoad(ctx, 8, func(w int, rnd *rand.Rand) outcome { return ops[w%2](w, rnd) })
	}

	t.Run("SpiceDBNodeStopped", func(t *testing.T) {
		// One node stops under check load and comes back. authzd answers through the other nodes: never a
		// wrong answer, only 200 or 503, some 200s while the node is down, all 200s again after it is back.
		ctx, cancel := context.WithCancel(context.Background())
		var stoppedAt, startedAt atomic.Int64
		go func() {
			defer cancel()
			time.Sleep(2 * time.Second)
			stoppedAt.Store(time.Now().UnixNano())
			timeout := 5 * time.Second
			if err := c.nodes[2].Stop(context.Background(), &timeout); err != nil {
				t.Errorf("stop node: %v", err)
			}
			time.Sleep(5 * time.Second)
			startedAt.Store(time.Now().UnixNano())
			if err := c.nodes[2].Start(context.Background()); err != nil {
				t.Errorf("start node: %v", err)
			}
			time.Sleep(10 * time.Second)
		}()
		outs := load(ctx)
		down, up := time.Unix(0, stoppedAt.Load()), time.Unix(0, startedAt.Load())
		var during, duringOK, lastFailure int
		var lastFailureAt time.Time
		for _, o := range outs {
			switch {
			case o.wrong:
				t.Errorf("WRONG ANSWER: %s said allowed=%v", o.desc, o.allowed)
			case o.status == http.StatusOK:
			case o.status == http.StatusServiceUnavailable && o.code == "unavailable":
				lastFailure++
				if o.at.After(lastFailureAt) {
					lastFailureAt = o.at
				}
			default:
				t.Errorf("%s: status %d %s err %v", o.desc, o.status, o.code, o.err)
			}
			if !o.sent.Before(down.Add(time.Second)) && o.at.Before(up) {
				during++
				if o.status == http.StatusOK {
					duringOK++
				}
			}
		}
		t.Logf("node down %s..%s: %d calls in all, %d while down (%d answered 200), %d answered 503 (last at +%s from the stop)",
			down.Format(time.StampMilli), up.Format(time.StampMilli), len(outs), during, duringOK, lastFailure, lastFailureAt.Sub(down).Round(time.Millisecond))
		if duringOK == 0 {
			t.Error("no check answered while one SpiceDB node of three was down")
		}
		if !lastFailureAt.IsZero() && lastFailureAt.After(up.Add(5*time.Second)) {
			t.Errorf("503s went on until %s after the node came back", lastFailureAt.Sub(up).Round(time.Millisecond))
		}
	})

	t.Run("RollingRestart", func(t *testing.T) {
		// Each replica in turn gets SIGTERM (it drains and flushes its audit writer), stops and starts again
		// while the load goes on. Calls to the replica that is down get no answer; every answered decision
		// has its audit row (reconciled below), and no answer is wrong.
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			defer cancel()
			for _, r := range c.replicas {
				time.Sleep(2 * time.Second)
				timeout := 15 * time.Second
				if err := r.c.Stop(context.Background(), &timeout); err != nil {
					t.Errorf("stop %s: %v", r.name, err)
				}
				if err := r.c.Start(context.Background()); err != nil {
					t.Errorf("start %s: %v", r.name, err)
				}
				if err := waitReady(r.api.base, time.Minute); err != nil {
					t.Errorf("%s after restart: %v", r.name, err)
				}
			}
			time.Sleep(2 * time.Second)
		}()
		outs := load(ctx)
		var answered, unanswered int
		for _, o := range outs {
			switch {
			case o.wrong:
				t.Errorf("WRONG ANSWER: %s said allowed=%v", o.desc, o.allowed)
			case o.status == http.StatusOK:
				answered++
			case o.status == 0 && o.err != nil:
				unanswered++ // connection refused or reset: the replica was down
			case o.status == http.StatusServiceUnavailable:
				// starting up or shutting down
			default:
				t.Errorf("%s: status %d %s err %v", o.desc, o.status, o.code, o.err)
			}
		}
		t.Logf("rolling restart: %d decisions answered, %d calls without an answer", answered, unanswered)
	})

	c.app.mustReconcileAudit(t)
}

// waitReady polls base/readyz until it answers 200.
func waitReady(base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := readyz(context.Background(), base)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
