package integration

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Images of the Docker world, pinned. spicedbImage must match the spicedb module version in go.mod.
const (
	postgresImage = "postgres:15-alpine"
	spicedbImage  = "authzed/spicedb:v1.57.1"
	postgresAlias = "pg" // the Postgres container's name on the world's network
)

// dockerWorld is one Postgres container, shared by the whole run (each test gets its own
// databases in it), on a network where each test starts its own SpiceDB container.
type dockerWorld struct {
	network  *testcontainers.DockerNetwork
	postgres *postgres.PostgresContainer
}

// pingDocker reports whether a Docker engine answers within timeout.
func pingDocker(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		provider, err := testcontainers.NewDockerProvider()
		if err != nil {
			errc <- err
			return
		}
		errc <- provider.Health(ctx) // Health closes the provider.
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func startDockerWorld(ctx context.Context) (w *world, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	d := &dockerWorld{}
	defer func() {
		if err != nil {
			d.close(context.Background())
		}
	}()

	if d.network, err = network.New(ctx); err != nil {
		return nil, fmt.Errorf("create network: %w", err)
	}
	d.postgres, err = postgres.Run(ctx, postgresImage,
		postgres.WithUsername("postgres"),
		postgres.WithPassword("postgres"),
		postgres.WithDatabase("postgres"),
		// SpiceDB's postgres datastore needs commit timestamps for its Watch API.
		testcontainers.WithCmdArgs("-c", "track_commit_timestamp=on", "-c", "max_connections=300"),
		network.WithNetwork([]string{postgresAlias}, d.network),
		postgres.BasicWaitStrategies(),
	)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", postgresImage, err)
	}
	adminURL, err := d.postgres.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		return nil, fmt.Errorf("postgres connection string: %w", err)
	}
	return &world{kind: worldDocker, adminURL: adminURL, docker: d}, nil
}

func (d *dockerWorld) close(ctx context.Context) {
	if d.postgres != nil {
		_ = testcontainers.TerminateContainer(d.postgres)
	}
	if d.network != nil {
		_ = d.network.Remove(ctx)
	}
}

// startSpiceDB runs `spicedb migrate head` and then `spicedb serve` on a fresh database of the
// world's Postgres, and returns the gRPC endpoint as this process reaches it.
func (d *dockerWorld) startSpiceDB(tb testing.TB, w *world) spicedbServer {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	_, dbName := w.newDatabase(tb, "spicedb")
	datastoreURI := fmt.Sprintf("postgres://postgres:postgres@%s:5432/%s?sslmode=disable", postgresAlias, dbName)
	env := map[string]string{
		"SPICEDB_DATASTORE_ENGINE":   "postgres",
		"SPICEDB_DATASTORE_CONN_URI": datastoreURI,
	}

	migrate, err := testcontainers.Run(ctx, spicedbImage,
		testcontainers.WithCmd("migrate", "head"),
		testcontainers.WithEnv(env),
		network.WithNetwork(nil, d.network),
		testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(2*time.Minute)),
	)
	testcontainers.CleanupContainer(tb, migrate)
	if err != nil {
		tb.Fatalf("spicedb migrate head: %v", err)
	}
	state, err := migrate.State(ctx)
	if err != nil {
		tb.Fatalf("spicedb migrate head: state: %v", err)
	}
	if state.ExitCode != 0 {
		tb.Fatalf("spicedb migrate head exited %d:\n%s", state.ExitCode, containerLogs(ctx, migrate))
	}

	key := "it-" + randomHex(16)
	serve, err := testcontainers.Run(ctx, spicedbImage,
		testcontainers.WithCmd("serve",
			"--grpc-preshared-key", key,
			"--http-enabled=false",
			"--telemetry-endpoint=",
			"--skip-release-check",
		),
		testcontainers.WithEnv(env),
		testcontainers.WithExposedPorts("50051/tcp"),
		network.WithNetwork(nil, d.network),
		testcontainers.WithWaitStrategy(
			wait.ForLog("grpc server started serving").WithStartupTimeout(time.Minute),
			// The image has no shell, so only the mapped port can be probed.
			wait.ForListeningPort("50051/tcp").SkipInternalCheck(),
		),
	)
	testcontainers.CleanupContainer(tb, serve)
	if err != nil {
		tb.Fatalf("spicedb serve: %v", err)
	}
	endpoint, err := serve.PortEndpoint(ctx, "50051/tcp", "")
	if err != nil {
		tb.Fatalf("spicedb serve endpoint: %v", err)
	}
	return spicedbServer{Endpoint: endpoint, Token: key}
}

func containerLogs(ctx context.Context, c testcontainers.Container) string {
	r, err := c.Logs(ctx)
	if err != nil {
		return fmt.Sprintf("(logs: %v)", err)
	}
	defer r.Close()
	b, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	return strings.TrimSpace(string(b))
}
