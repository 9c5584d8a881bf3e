package spicedb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/cmd/datastore"
	spembedded "github.com/authzed/spicedb/pkg/embedded"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/pgtest"
)

// BenchmarkEmbeddedAPI compares the two ways of asking an in-process SpiceDB: the gRPC
// API over bufconn that authzd's embedded mode uses, and SpiceDB's pkg/embedded (v1.56+), which calls
// the dispatcher directly. Same Postgres datastore, same checks (a tenant key through a custom role,
// allowed for half the users), at c=1, 8 and 32. pkg/embedded only checks at the head revision (the
// equivalent of fully_consistent), so the bufconn client is measured both fully consistent (like for
// like) and with minimize_latency (what authzd sends). It reports checks/s and this process's CPU per
// check (SpiceDB runs in it; Postgres does not).
//
//	go test -run '^$' -bench BenchmarkEmbeddedAPI -benchtime 3s ./internal/spicedb
func BenchmarkEmbeddedAPI(b *testing.B) {
	model := mustManifests(b)
	url := pgtest.MustCreate(b)
	ctx := context.Background()
	g, err := Open(ctx, Config{Schema: model.Schema(), Timeout: 5 * time.Second, CheckSlots: -1,
		Embedded: EmbeddedConfig{Datastore: "postgres", DatabaseURL: url}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	key, err := authz.ParseKey("scaibunker:execute")
	if err != nil {
		b.Fatal(err)
	}
	const users = 64
	must := mustWrite(b)
	must(g.PutPartner(ctx, "p"))
	must(g.PutTenant(ctx, "t", "p"))
	must(g.PutRole(ctx, "t", "ops", []authz.Key{key}))
	for u := 0; u < users; u += 2 {
		if _, err := g.SetMember(ctx, "t", "ops", authz.Subject{Kind: authz.SubjectUser, ID: fmt.Sprint("u", u)}, true); err != nil {
			b.Fatal(err)
		}
	}

	ds, err := datastore.NewDatastore(ctx, datastore.WithEngine(datastore.PostgresEngine), datastore.WithURI(withStatementCache(url)),
		datastore.WithEnableDatastoreMetrics(false), datastore.WithDisableWatchSupport(true))
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	// With a schema cache, as SpiceDB's server has one; without it every check reads the schema.
	perms, err := spembedded.NewPermissions(spembedded.Config{Datastore: ds, SchemaCacheMaxCostBytes: 32 << 20})
	if err != nil {
		b.Fatal(err)
	}

	rel := key.Relation()
	want := func(u int) bool { return u%2 == 0 }
	grpcCheck := func(c *v1.Consistency) func(int) (bool, error) {
		return func(u int) (bool, error) {
			resp, err := g.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{
				Consistency: c, Resource: object(typeTenant, "t"), Permission: rel,
				Subject: &v1.SubjectReference{Object: object(authz.SubjectUser, fmt.Sprint("u", u))},
			})
			return resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION, err
		}
	}
	paths := []struct {
		name  string
		check func(u int) (bool, error)
	}{
		{"bufconn-grpc-fully-consistent", grpcCheck(&v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}})},
		{"bufconn-grpc-minimize-latency", grpcCheck(&v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}})},
		{"pkg-embedded-head", func(u int) (bool, error) {
			res, err := perms.Check(ctx, spembedded.CheckRequest{ResourceType: typeTenant, ResourceID: "t", Permission: rel,
				SubjectType: authz.SubjectUser, SubjectID: fmt.Sprint("u", u)})
			return res.HasPermission, err
		}},
	}
	for _, p := range paths {
		for _, c := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("%s/c=%d", p.name, c), func(b *testing.B) {
				var next atomic.Int64
				one := func() {
					u := int(next.Add(1) % users)
					got, err := p.check(u)
					if err != nil {
						b.Error(err)
					} else if got != want(u) {
						b.Errorf("user u%d: allowed = %v, want %v", u, got, want(u))
					}
				}
				cpu0 := cpuTime()
				start := time.Now()
				b.ResetTimer()
				if c == 1 {
					for b.Loop() {
						one()
					}
				} else {
					b.SetParallelism(c / 2) // RunParallel runs parallelism × GOMAXPROCS (2 here) goroutines
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							one()
						}
					})
				}
				b.StopTimer()
				elapsed, cpu := time.Since(start), cpuTime()-cpu0
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "checks/s")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/check")
			})
		}
	}
}

// cpuTime is the user plus system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
