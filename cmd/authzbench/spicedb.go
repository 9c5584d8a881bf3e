package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

const spicedbModule = "github.com/authzed/spicedb"

// spicedbVersion is the SpiceDB version go.mod pins, read from this binary's
// build information (authzd links SpiceDB as a library), so the cached
// server binary is rebuilt when the pin moves.
func spicedbVersion(ctx context.Context) (string, error) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == spicedbModule {
				if d.Replace != nil {
					d = d.Replace
				}
				if d.Version != "" && d.Version != "(devel)" {
					return d.Version, nil
				}
			}
		}
	}
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", spicedbModule).Output()
	if err != nil {
		return "", fmt.Errorf("find the pinned SpiceDB version: go list -m %s: %w", spicedbModule, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// spicedbBinary returns the path of a spicedb server binary of the pinned
// version, building it into the user cache directory the first time.
func spicedbBinary(ctx context.Context, progress io.Writer) (string, error) {
	version, err := spicedbVersion(ctx)
	if err != nil {
		return "", err
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "authzbench")
	bin := filepath.Join(dir, "spicedb-"+version)
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	modRoot, err := moduleRoot(ctx, "spicedb")
	if err != nil {
		return "", err
	}

	fmt.Fprintf(progress, "building spicedb %s into %s (once; later runs reuse it)\n", version, bin)
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	// go.mod pins cmd/spicedb as a tool, so go.sum covers everything it imports.
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, spicedbModule+"/cmd/spicedb")
	cmd.Dir, cmd.Env = modRoot, goEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("go build spicedb: %w\n%s", err, out)
	}
	return bin, os.Rename(tmp, bin)
}

// spicedbServer is a SpiceDB server process on the Postgres datastore,
// listening on loopback only.
type spicedbServer struct {
	*child
	Addr        string // gRPC host:port
	Key         string // preshared key
	MetricsAddr string // metrics and pprof host:port; empty unless profiling
}

type spicedbOptions struct {
	// QuantizationInterval overrides SpiceDB's revision quantization (5s);
	// only the smoke mode shortens it, so freshly provisioned data is visible sooner.
	QuantizationInterval time.Duration
	// Profile enables SpiceDB's metrics server (which serves pprof) on loopback.
	Profile bool
	// Extra flags for `spicedb serve`.
	Extra []string
	// Env adds NAME=value variables to the server's environment (e.g. GOGC).
	Env []string
}

// startSpiceDB migrates the datastore and starts `spicedb serve` on it.
func startSpiceDB(ctx context.Context, bin, datastoreURL string, o spicedbOptions) (*spicedbServer, error) {
	migrate := exec.CommandContext(ctx, bin, "migrate", "head", "--datastore-engine", "postgres",
		"--datastore-conn-uri", datastoreURL, "--log-level", "warn", "--skip-release-check")
	if out, err := migrate.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("spicedb migrate head: %w\n%s", err, out)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &spicedbServer{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), Key: randomHex(16)}
	args := []string{"serve",
		"--grpc-preshared-key", s.Key,
		"--grpc-addr", s.Addr,
		"--datastore-engine", "postgres",
		"--datastore-conn-uri", datastoreURL,
		// Watch feeds authzd's decision cache (Postgres needs track_commit_timestamp=on; make setup sets it),
		// polled every 100ms as the embedded SpiceDB does (SpiceDB's default is 1s).
		"--watch-api-heartbeat", "100ms",
		// The Postgres server is shared with other work; SpiceDB's default opens 20 read connections up front.
		"--datastore-conn-pool-read-min-open", "4",
		"--http-enabled=false",
		"--telemetry-endpoint=",
		"--skip-release-check",
		"--log-level", "warn",
	}
	if o.Profile {
		s.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
		args = append(args, "--metrics-enabled=true", "--metrics-addr", s.MetricsAddr)
	} else {
		args = append(args, "--metrics-enabled=false")
	}
	if o.QuantizationInterval > 0 {
		args = append(args, "--datastore-revision-quantization-interval", o.QuantizationInterval.String())
	}
	args = append(args, o.Extra...)
	cmd := exec.Command(bin, args...)
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	if s.child, err = startChild("spicedb", s.Addr, cmd, &tailBuffer{max: 16 << 10}); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, 60*time.Second, s.ready); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Client dials the server the way a module would: the authzed-go client with the preshared key.
func (s *spicedbServer) Client() (*authzed.Client, error) {
	return authzed.NewClient(s.Addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpcutil.WithInsecureBearerToken(s.Key))
}

// ready asks for the schema, as a module's first call would.
func (s *spicedbServer) ready(ctx context.Context) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = c.ReadSchema(cctx, &v1.ReadSchemaRequest{})
	// A fresh datastore has no schema yet: NotFound means the server answers.
	if err == nil || strings.Contains(err.Error(), "NotFound") || strings.Contains(err.Error(), "No schema") {
		return nil
	}
	return err
}

// Profile fetches a CPU profile of the server covering the next d.
func (s *spicedbServer) Profile(ctx context.Context, d time.Duration, path string) error {
	if s.MetricsAddr == "" {
		return errors.New("spicedb profiling is not enabled")
	}
	return fetchProfile(ctx, s.MetricsAddr, d, path)
}

// Stop terminates the server: SIGINT, then SIGKILL after 10s.
func (s *spicedbServer) Stop() {
	if s != nil {
		_ = s.stop(10 * time.Second)
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago;
// it holds them all at once so that it cannot hand out one port twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
