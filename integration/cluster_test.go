package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

const envCluster = "AUTHZ_TEST_CLUSTER" // "0": skip the cluster scenario in the Docker world

// cluster is the deployment of docs/deployment.md in containers: SpiceDB nodes that dispatch sub-problems
// to each other, authzd replicas (the authzd image) that reach SpiceDB through one DNS name naming every
// node, and the world's Postgres holding SpiceDB's datastore and the audit log. Postgres is reached over
// a network of its own (db), so that a replica can be cut off Postgres alone. db is internal, so Docker
// never makes it the endpoint that carries a replica's published port (disconnecting that one would
// take the port away too).
type cluster struct {
	d        *dockerWorld
	app      *testcontainers.DockerNetwork // SpiceDB nodes and authzd replicas, and their published ports
	db       *testcontainers.DockerNetwork // internal: the world's Postgres, SpiceDB nodes and authzd replicas
	alias    string                        // DNS name of every SpiceDB node on the app network
	nodes    []testcontainers.Container
	replicas []*clusterReplica
	audit    *testApp // the shared call log and the audit database, for reconciliation
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
	var err error
	if c.app, err = network.New(ctx, network.WithLabels(runLabels())); err != nil {
		tb.Fatalf("create network: %v", err)
	}
	tb.Cleanup(func() { _ = c.app.Remove(context.Background()) }) // after the containers' cleanups
	if c.db, err = network.New(ctx, network.WithLabels(runLabels()), network.WithInternal()); err != nil {
		tb.Fatalf("create network: %v", err)
	}
	pg := d.postgres.GetContainerID()
	if _, err := d.cli.NetworkConnect(ctx, c.db.ID, client.NetworkConnectOptions{
		Container: pg, EndpointConfig: &mobynet.EndpointSettings{Aliases: []string{postgresAlias}},
	}); err != nil {
		tb.Fatalf("connect postgres to the cluster's db network: %v", err)
	}
	tb.Cleanup(func() {
		_, _ = d.cli.NetworkDisconnect(context.Background(), c.db.ID, client.NetworkDisconnectOptions{Container: pg, Force: true})
		_ = c.db.Remove(context.Background())
	})

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
				"--watch-api-heartbeat=100ms",
				"--dispatch-cluster-enabled=true",
				"--dispatch-upstream-addr=dns:///"+c.alias+":50053",
			),
			testcontainers.WithEnv(env),
			testcontainers.WithLabels(runLabels()),
			network.WithNetwork([]string{fmt.Sprintf("%s-%d", c.alias, i), c.alias}, c.app),
			network.WithNetwork(nil, c.db),
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
			network.WithNetwork([]string{name}, c.app),
			network.WithNetwork(nil, c.db),
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
	c.audit = &testApp{api: c.replicas[0].api, Audit: pool, AuditURL: auditURL}
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
// replicas, one Postgres. Scenarios: read-your-writes across the replicas; each SpiceDB node stopped in
// turn under load; one replica cut off Postgres (docker network disconnect) under load; a rolling restart
// of both replicas under load. At the end the audit is reconciled against every call of all of them.
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
	a.mustRole(t, "t", "ops", "scaibunker:execute", "scaibunker:create")

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

	tok := a.mustMember(t, "t", "ops", "alice")
	checks := freshWhereAllowed([]knownCheck{
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:execute"}, true},
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:create"}, true},
		{checkRequest{TenantID: "t", UserID: "bob", Permission: "scaibunker:execute"}, false},
		{checkRequest{TenantID: "t", UserID: "alice", Permission: "scaiskills:view"}, false},
	}, tok)
	// Load spread over both replicas; each outcome's desc starts with the replica's name.
	load := func(ctx context.Context) []outcome {
		var ops []func(int, *rand.Rand) outcome
		for _, r := range c.replicas {
			op := knownCheckOp(r.api.as("ops"), checks)
			ops = append(ops, func(w int, rnd *rand.Rand) outcome {
				o := op(w, rnd)
				o.desc = r.name + ": " + o.desc
				return o
			})
		}
		return runLoad(ctx, 8, func(w int, rnd *rand.Rand) outcome { return ops[w%len(ops)](w, rnd) })
	}
	of := func(outs []outcome, r *clusterReplica) []outcome {
		var mine []outcome
		for _, o := range outs {
			if strings.HasPrefix(o.desc, r.name+": ") {
				mine = append(mine, o)
			}
		}
		return mine
	}

	t.Run("SpiceDBNodeStopped", func(t *testing.T) {
		// Each node in turn stops under check load and comes back (so the node a replica's connection is
		// on is among them). authzd answers through the other nodes: never a wrong answer, only 200 or
		// 503, 200s while a node is down, and no 503 later than 10 s after the node is back.
		type window struct{ down, up time.Time }
		windows := make([]window, len(c.nodes))
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			defer cancel()
			for i, n := range c.nodes {
				time.Sleep(2 * time.Second)
				windows[i].down = time.Now()
				timeout := 2 * time.Second
				if err := n.Stop(context.Background(), &timeout); err != nil {
					t.Errorf("stop node %d: %v", i, err)
				}
				time.Sleep(3 * time.Second)
				windows[i].up = time.Now()
				if err := n.Start(context.Background()); err != nil {
					t.Errorf("start node %d: %v", i, err)
				}
			}
			time.Sleep(10 * time.Second)
		}()
		outs := load(ctx)
		for i, w := range windows {
			var during, duringOK, unavailable int
			var last time.Time
			for _, o := range outs {
				if !o.sent.Before(w.down) && o.at.Before(w.up) {
					during++
					if o.status == http.StatusOK {
						duringOK++
					}
				}
				if o.status == http.StatusServiceUnavailable && !o.at.Before(w.down) && (i == len(windows)-1 || o.at.Before(windows[i+1].down)) {
					unavailable++
					if o.at.After(last) {
						last = o.at
					}
				}
			}
			t.Logf("node %d down %s..%s: %d calls sent while down, %d answered 200; %d answered 503 until the next stop",
				i, w.down.Format(time.StampMilli), w.up.Format(time.StampMilli), during, duringOK, unavailable)
			if duringOK == 0 {
				t.Errorf("node %d down: no check answered 200 while one SpiceDB node of %d was down", i, len(c.nodes))
			}
			if !last.IsZero() && last.After(w.up.Add(10*time.Second)) {
				t.Errorf("node %d: 503s went on until %s after it came back", i, last.Sub(w.up).Round(time.Millisecond))
			}
		}
		for _, o := range outs {
			switch {
			case o.wrong:
				t.Errorf("WRONG ANSWER: %s said allowed=%v", o.desc, o.allowed)
			case o.status == http.StatusOK:
			case o.status == http.StatusServiceUnavailable && o.code == "unavailable":
			default:
				t.Errorf("%s: status %d %s err %v", o.desc, o.status, o.code, o.err)
			}
		}
	})

	t.Run("PostgresCutFromOneReplica", func(t *testing.T) {
		// docker network disconnect cuts the first replica off Postgres's network (it still reaches
		// SpiceDB): it answers 503 and its /readyz says so, the other replica serves on, and after the
		// reconnect the first recovers by itself.
		cut, other := c.replicas[0], c.replicas[1]
		id := cut.c.GetContainerID()
		var cutAt, restoreAt time.Time
		var readyDuring error
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			defer cancel()
			time.Sleep(2 * time.Second)
			cutAt = time.Now()
			if _, err := c.d.cli.NetworkDisconnect(context.Background(), c.db.ID, client.NetworkDisconnectOptions{Container: id, Force: true}); err != nil {
				t.Errorf("network disconnect: %v", err)
			}
			// Calls stuck on the cut connections answer 503 when the audit commit times out (3 s).
			time.Sleep(10 * time.Second)
			readyDuring = readyz(context.Background(), cut.api.base)
			restoreAt = time.Now()
			if _, err := c.d.cli.NetworkConnect(context.Background(), c.db.ID, client.NetworkConnectOptions{Container: id}); err != nil {
				t.Errorf("network connect: %v", err)
			}
			time.Sleep(15 * time.Second)
		}()
		outs := load(ctx)
		if readyDuring == nil {
			t.Errorf("%s /readyz answered 200 while cut off Postgres", cut.name)
		}
		t.Logf("%s (cut off Postgres %s..%s):", cut.name, cutAt.Format(time.StampMilli), restoreAt.Format(time.StampMilli))
		faultReport(t, of(outs, cut), cutAt, restoreAt, 4*time.Second, 15*time.Second)
		var ok int
		for _, o := range of(outs, other) {
			switch {
			case o.wrong:
				t.Errorf("WRONG ANSWER: %s said allowed=%v", o.desc, o.allowed)
			case o.status == http.StatusOK:
				ok++
			default:
				t.Errorf("%s, which was not cut: status %d %s err %v", o.desc, o.status, o.code, o.err)
			}
		}
		t.Logf("%s (not cut): %d checks, all answered 200: %v", other.name, len(of(outs, other)), ok == len(of(outs, other)))
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
		// Classified by this fault's rule (a replica down refuses connections), like the SIGKILL test's.
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

	c.audit.mustReconcileAudit(t)
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
