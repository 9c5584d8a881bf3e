package integration

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Images of the Docker world. The names are settings shared with docker-compose.yml; they default to
// the official images. Where those cannot be pulled, the suite uses the ones `make images`
// (docker/images.sh) builds here, and says so.
const (
	envPostgresImage = "POSTGRES_IMAGE"  // default postgres:15
	envSpiceDBImage  = "SPICEDB_IMAGE"   // default authzed/spicedb:<the version go.mod pins>
	envAuthzdImage   = "AUTHZD_IMAGE"    // default authzd:local (compose only)
	envPull          = "AUTHZ_TEST_PULL" // "0": never try to pull an image that is not present
	envRyukDisabled  = "TESTCONTAINERS_RYUK_DISABLED"
	envHostOverride  = "TESTCONTAINERS_HOST_OVERRIDE"

	postgresMajor = "15"
	postgresAlias = "pg" // the Postgres container's name on the world's network
)

// The names docker/images.sh gives the images it builds.
func localPostgresImage() string    { return "authzd-local/postgres:" + postgresMajor }
func localSpiceDBImage() string     { return "authzd-local/spicedb:" + spicedbVersion() }
func officialPostgresImage() string { return "postgres:" + postgresMajor }
func officialSpiceDBImage() string  { return "authzed/spicedb:" + spicedbVersion() }
func defaultAuthzdImage() string    { return "authzd:local" }
func envOr(name, def string) string { return cmp.Or(os.Getenv(name), def) }

// spicedbVersion is the version of the SpiceDB module linked into this test binary: the one go.mod pins.
var spicedbVersion = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == spicedbModule {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	panic("integration: " + spicedbModule + " is not in the test binary's build info")
})

// Every container, network and volume the suite creates carries these labels, so that it removes its
// own at the end (and on SIGINT/SIGTERM), and the next run removes what a killed run left behind.
// testcontainers' own reaper (Ryuk) is an image that cannot be pulled everywhere, so it is disabled.
const (
	labelRun   = "dev.scailabs.authzd.test.run"   // this run's id
	labelOwner = "dev.scailabs.authzd.test.owner" // hostname/pid of the test process
)

var runLabels = sync.OnceValue(func() map[string]string {
	host, _ := os.Hostname()
	return map[string]string{
		labelRun:   randomHex(6),
		labelOwner: host + "/" + strconv.Itoa(os.Getpid()),
	}
})

// dockerWorld is one Postgres container, shared by the whole run (each test gets its own
// databases in it), on a network where each test starts its own SpiceDB containers.
type dockerWorld struct {
	cli           *testcontainers.DockerClient
	network       *testcontainers.DockerNetwork
	postgres      *testcontainers.DockerContainer
	postgresImage string
	spicedbImage  string
	notes         []string // how the images were chosen
	closeOnce     sync.Once
}

// configureTestcontainers turns testcontainers' Ryuk off, and makes it reach published ports on
// 127.0.0.1 (where withLoopbackPorts publishes them; testcontainers would take the bridge gateway when
// it finds /.dockerenv), unless the caller chose otherwise. It must run before testcontainers reads its
// configuration (the first provider).
func configureTestcontainers() {
	for k, v := range map[string]string{envRyukDisabled: "true", envHostOverride: "127.0.0.1"} {
		if os.Getenv(k) == "" {
			_ = os.Setenv(k, v)
		}
	}
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
	if d.cli, err = testcontainers.NewDockerClientWithOpts(ctx); err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	removeOrphans(ctx, d.cli)

	if d.postgresImage, err = d.chooseImage(ctx, envOr(envPostgresImage, officialPostgresImage()), localPostgresImage()); err != nil {
		return nil, err
	}
	if d.spicedbImage, err = d.chooseImage(ctx, envOr(envSpiceDBImage, officialSpiceDBImage()), localSpiceDBImage()); err != nil {
		return nil, err
	}

	if d.network, err = network.New(ctx, network.WithLabels(runLabels())); err != nil {
		return nil, fmt.Errorf("create network: %w", err)
	}
	d.postgres, err = testcontainers.Run(ctx, d.postgresImage,
		testcontainers.WithEnv(map[string]string{
			"POSTGRES_USER":     "postgres",
			"POSTGRES_PASSWORD": "postgres",
			"POSTGRES_DB":       "postgres",
		}),
		// SpiceDB's postgres datastore needs commit timestamps for its Watch API.
		testcontainers.WithCmd("postgres", "-c", "track_commit_timestamp=on", "-c", "max_connections=300"),
		testcontainers.WithExposedPorts("5432/tcp"),
		testcontainers.WithLabels(runLabels()),
		withLoopbackPorts("5432/tcp"),
		network.WithNetwork([]string{postgresAlias}, d.network),
		// Over TCP: both the official image and ours initialise on a server without a TCP listener, so
		// this passes only once the real server accepts connections.
		testcontainers.WithWaitStrategy(
			wait.ForExec([]string{"pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"}).
				WithPollInterval(250*time.Millisecond).WithStartupTimeout(2*time.Minute),
			wait.ForListeningPort("5432/tcp").SkipInternalCheck(),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", d.postgresImage, err)
	}
	endpoint, err := loopbackEndpoint(ctx, d.postgres, "5432/tcp")
	if err != nil {
		return nil, fmt.Errorf("postgres endpoint: %w", err)
	}
	adminURL := "postgres://postgres:postgres@" + endpoint + "/postgres?sslmode=disable"
	if err := waitPostgres(ctx, adminURL); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", d.postgresImage, err, containerLogs(ctx, d.postgres))
	}
	return &world{kind: worldDocker, adminURL: adminURL, docker: d}, nil
}

// chooseImage returns want when it is present or can be pulled, else the locally built fallback.
func (d *dockerWorld) chooseImage(ctx context.Context, want, local string) (string, error) {
	if imagePresent(ctx, d.cli, want) {
		return want, nil
	}
	var why, short string
	if os.Getenv(envPull) == "0" {
		why, short = fmt.Sprintf("%s is not present and %s=0", want, envPull), "not present, not pulled"
	} else if err := pullImage(ctx, d.cli, want); err == nil {
		d.notes = append(d.notes, "pulled "+want)
		return want, nil
	} else {
		why, short = fmt.Sprintf("cannot pull %s (%v)", want, err), "pull failed"
	}
	if local == want || !imagePresent(ctx, d.cli, local) {
		return "", fmt.Errorf("%s, and there is no local image %s: run `make images`", why, local)
	}
	fmt.Fprintf(os.Stderr, "integration: %s; using %s, built here by `make images`\n", why, local)
	d.notes = append(d.notes, fmt.Sprintf("%s instead of %s (%s)", local, want, short))
	return local, nil
}

func imagePresent(ctx context.Context, cli *testcontainers.DockerClient, ref string) bool {
	_, err := cli.ImageInspect(ctx, ref)
	return err == nil
}

func pullImage(ctx context.Context, cli *testcontainers.DockerClient, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	resp, err := cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	return resp.Wait(ctx)
}

// withLoopbackPorts publishes the container's ports on 127.0.0.1 only (testcontainers' default is
// every interface of the host), each on a free host port.
func withLoopbackPorts(ports ...string) testcontainers.CustomizeRequestOption {
	m := map[string]string{}
	for _, p := range ports {
		m[p] = ""
	}
	return withLoopbackPortMap(m)
}

// withLoopbackPortMap publishes container ports on the given host ports of 127.0.0.1 ("": a free one).
// A fixed host port stays the same across a restart of the container.
func withLoopbackPortMap(ports map[string]string) testcontainers.CustomizeRequestOption {
	return testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
		hc.PortBindings = mobynet.PortMap{}
		for p, host := range ports {
			hc.PortBindings[mobynet.MustParsePort(p)] = []mobynet.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: host}}
		}
	})
}

// loopbackEndpoint is 127.0.0.1:<the host port published for port>.
func loopbackEndpoint(ctx context.Context, c *testcontainers.DockerContainer, port string) (string, error) {
	p, err := c.MappedPort(ctx, port)
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(int(p.Num())), nil
}

func waitPostgres(ctx context.Context, dbURL string) error {
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if err = pingPostgres(ctx, dbURL, 3*time.Second); err == nil {
			return nil
		}
	}
	return err
}

func (d *dockerWorld) String() string {
	s := fmt.Sprintf("docker (testcontainers: %s, %s", d.postgresImage, d.spicedbImage)
	if len(d.notes) > 0 {
		s += ": " + strings.Join(d.notes, ", ")
	}
	return s + "; authzd in-process in external-SpiceDB mode)"
}

func (d *dockerWorld) close(ctx context.Context) {
	d.closeOnce.Do(func() {
		if d.postgres != nil {
			_ = testcontainers.TerminateContainer(d.postgres)
		}
		if d.network != nil {
			_ = d.network.Remove(ctx)
		}
		if d.cli != nil {
			// Whatever a test's cleanup did not get to.
			removeLabelled(ctx, d.cli, make(client.Filters).Add("label", labelRun+"="+runLabels()[labelRun]), nil)
			_ = d.cli.Close()
		}
	})
}

// removeOrphans removes the containers, networks and volumes of earlier runs on this host whose test
// process is gone (killed, or timed out before its cleanup ran). Runs of live processes, such as another
// developer's, are left alone.
func removeOrphans(ctx context.Context, cli *testcontainers.DockerClient) {
	host, _ := os.Hostname()
	removeLabelled(ctx, cli, make(client.Filters).Add("label", labelOwner), func(labels map[string]string) bool {
		h, pid, ok := strings.Cut(labels[labelOwner], "/")
		if !ok || h != host {
			return false
		}
		n, err := strconv.Atoi(pid)
		return err == nil && n > 0 && errors.Is(syscall.Kill(n, 0), syscall.ESRCH)
	})
}

// removeLabelled removes the containers (with their anonymous volumes), then the networks and the
// volumes that match f and, when given, match.
func removeLabelled(ctx context.Context, cli *testcontainers.DockerClient, f client.Filters, match func(map[string]string) bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ok := func(labels map[string]string) bool { return match == nil || match(labels) }
	if cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs.Items {
			if ok(c.Labels) {
				_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
			}
		}
	}
	if ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f}); err == nil {
		for _, n := range ns.Items {
			if ok(n.Labels) {
				_, _ = cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
			}
		}
	}
	if vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f}); err == nil {
		for _, v := range vs.Items {
			if ok(v.Labels) {
				_, _ = cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
			}
		}
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

	d.mustMigrateSpiceDB(ctx, tb, env)

	// The preshared key goes in the environment, not on the command line (docker inspect shows both,
	// but `ps` inside the container and the engine's logs of the command do not see the environment).
	key := "it-" + randomHex(16)
	serveEnv := map[string]string{"SPICEDB_GRPC_PRESHARED_KEY": key}
	for k, v := range env {
		serveEnv[k] = v
	}
	serve, err := testcontainers.Run(ctx, d.spicedbImage,
		testcontainers.WithCmd("serve",
			"--http-enabled=false",
			"--telemetry-endpoint=",
			"--skip-release-check",
			// The Watch poll interval is the decision cache's lag (SpiceDB's default is 1s).
			"--watch-api-heartbeat=100ms",
		),
		testcontainers.WithEnv(serveEnv),
		testcontainers.WithExposedPorts("50051/tcp"),
		testcontainers.WithLabels(runLabels()),
		withLoopbackPorts("50051/tcp"),
		network.WithNetwork(nil, d.network),
		testcontainers.WithWaitStrategy(
			wait.ForLog("grpc server started serving").WithStartupTimeout(time.Minute),
			// The image has no shell, so only the published port can be probed from here.
			wait.ForListeningPort("50051/tcp").SkipInternalCheck(),
		),
	)
	testcontainers.CleanupContainer(tb, serve)
	if err != nil {
		tb.Fatalf("spicedb serve: %v", err)
	}
	endpoint, err := loopbackEndpoint(ctx, serve, "50051/tcp")
	if err != nil {
		tb.Fatalf("spicedb serve endpoint: %v", err)
	}
	if err := waitSpiceDBHealthy(endpoint, nil, time.Minute); err != nil {
		tb.Fatalf("spicedb serve: %v\n%s", err, containerLogs(ctx, serve))
	}
	return spicedbServer{Endpoint: endpoint, Token: key}
}

// mustMigrateSpiceDB runs `spicedb migrate head` on the datastore env names and waits for it to exit 0.
func (d *dockerWorld) mustMigrateSpiceDB(ctx context.Context, tb testing.TB, env map[string]string) {
	tb.Helper()
	migrate, err := testcontainers.Run(ctx, d.spicedbImage,
		testcontainers.WithCmd("migrate", "head"),
		testcontainers.WithEnv(env),
		testcontainers.WithLabels(runLabels()),
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
