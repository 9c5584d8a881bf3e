package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const spicedbModule = "github.com/authzed/spicedb"

// spicedbServer is a SpiceDB that authzd reaches in external mode.
type spicedbServer struct {
	Endpoint string // host:port of its gRPC API
	Token    string // its preshared key
}

// startSpiceDB gives tb a SpiceDB of its own outside authzd: a container in the Docker world,
// the pinned spicedb binary on the memory datastore in the local world.
func (w *world) startSpiceDB(tb testing.TB) spicedbServer {
	tb.Helper()
	if w.docker != nil {
		return w.docker.startSpiceDB(tb, w)
	}
	return startLocalSpiceDB(tb, mustSpiceDBBinary(tb))
}

// startLocalSpiceDB runs `spicedb serve` on 127.0.0.1 only and waits until its gRPC health check serves.
func startLocalSpiceDB(tb testing.TB, bin string) spicedbServer {
	tb.Helper()
	key := "it-" + randomHex(16)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port can be taken between probe and listen
		addr := mustFreeAddr(tb)
		logPath := filepath.Join(tb.TempDir(), "spicedb.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(bin, "serve",
			"--datastore-engine", "memory",
			"--grpc-addr", addr,
			"--http-enabled=false",
			"--metrics-enabled=false",
			"--dispatch-cluster-enabled=false",
			"--telemetry-endpoint=",
			"--skip-release-check",
			"--watch-api-heartbeat", "100ms",
			"--log-format", "json",
		)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.Env = append(os.Environ(), "SPICEDB_GRPC_PRESHARED_KEY="+key) // not on the command line, which ps shows
		if err := cmd.Start(); err != nil {
			logFile.Close()
			tb.Fatalf("start spicedb: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); logFile.Close() }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		if err := waitSpiceDBHealthy(addr, exited, 60*time.Second); err != nil {
			stop()
			lastErr = fmt.Errorf("%w\n%s", err, tailFile(logPath, 4096))
			continue
		}
		tb.Cleanup(stop)
		return spicedbServer{Endpoint: addr, Token: key}
	}
	tb.Fatalf("spicedb did not become healthy: %v", lastErr)
	return spicedbServer{}
}

func waitSpiceDBHealthy(addr string, exited <-chan error, timeout time.Duration) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("spicedb exited: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("spicedb at %s not serving after %s (last: %v, %v)", addr, timeout, resp.GetStatus(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// spicedbBinary builds (or finds) the spicedb binary once per run.
var spicedbBinary = sync.OnceValues(buildSpiceDB)

// mustSpiceDBBinary returns the spicedb binary of the version go.mod pins: AUTHZ_TEST_SPICEDB_BIN when
// set, else one built once into the user cache directory (it is ~120 MB; never committed).
func mustSpiceDBBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := spicedbBinary()
	if err != nil {
		tb.Fatalf("spicedb binary: %v", err)
	}
	return bin
}

func buildSpiceDB() (string, error) {
	if p := os.Getenv(envSpiceDBBin); p != "" {
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out, err := goCmd(root, "list", "-m", "-f", "{{.Version}}", spicedbModule).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", spicedbModule, err)
	}
	version := strings.TrimSpace(string(out))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "authzd-integration")
	bin := filepath.Join(dir, fmt.Sprintf("spicedb-%s-%s-%s", version, runtime.GOOS, runtime.GOARCH))
	if out, err := exec.Command(bin, "version").CombinedOutput(); err == nil && strings.Contains(string(out), version) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}

	tmp := bin + ".tmp"
	// go.mod pins cmd/spicedb as a tool, so go.sum covers everything it imports.
	build := goCmd(root, "build", "-o", tmp, spicedbModule+"/cmd/spicedb")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s/cmd/spicedb@%s: %w\n%s", spicedbModule, version, err, out)
	}
	return bin, os.Rename(tmp, bin)
}

var moduleRootOnce = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
})

// moduleRoot is the directory of authzd's go.mod.
func moduleRoot() (string, error) { return moduleRootOnce() }

func goCmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	return cmd
}

func tailFile(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}
