package integration

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/scailabs/authzd/client/tlsfiles/tlsfilestest"
	"github.com/scailabs/authzd/cmd/authzd/app"
)

// TestSpiceDBTLS: authzd dials an external SpiceDB serving TLS with a
// private CA named by AUTHZ_SPICEDB_CA_FILE, provisions and checks through
// it; with another CA it does not start.
func TestSpiceDBTLS(t *testing.T) {
	w := mustWorld(t)
	if w.docker != nil {
		t.Skip("the local world runs SpiceDB's binary with TLS; the Docker world's SpiceDB serves plaintext")
	}
	dir := t.TempDir()
	ca, other := tlsfilestest.MustCA(t, "spicedb CA"), tlsfilestest.MustCA(t, "other CA")
	p := ca.MustIssue(t, tlsfilestest.Leaf{})
	certFile, keyFile := tlsfilestest.MustWrite(t, dir, "tls.crt", p.Cert), tlsfilestest.MustWrite(t, dir, "tls.key", p.Key)
	caFile, otherFile := tlsfilestest.MustWrite(t, dir, "ca.crt", ca.PEM), tlsfilestest.MustWrite(t, dir, "other.crt", other.PEM)
	srv := startLocalSpiceDBTLS(t, mustSpiceDBBinary(t), certFile, keyFile, ca)

	a := startApp(t, withExternalSpiceDB(srv), withConfig(func(c *app.Config) { c.SpiceDBInsecure, c.SpiceDBCAFile = false, caFile }))
	ops := a.as("ops-admin")
	ops.mustPartner(t, "p")
	ops.mustTenant(t, "t", "p")
	ops.mustRole(t, "t", "ops", "scaibunker:execute")
	tok := ops.mustMember(t, "t", "ops", "alice")
	a.mustCheck(t, checkRequest{TenantID: "t", UserID: "alice", Permission: "scaibunker:execute", ConsistencyToken: tok}, true)
	a.mustCheck(t, checkRequest{TenantID: "t", UserID: "bob", Permission: "scaibunker:execute", ConsistencyToken: tok}, false)

	auditURL, _ := w.newDatabase(t, "audit-other-ca")
	cfg := mustDefaultConfig(t)
	cfg.HTTPAddr, cfg.DatabaseURL, cfg.AdminToken = "127.0.0.1:0", auditURL, "admin"
	cfg.SpiceDBEndpoint, cfg.SpiceDBToken, cfg.SpiceDBCAFile, cfg.SpiceDBStartTimeout = srv.Endpoint, srv.Token, otherFile, 3*time.Second
	m := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	err := m.Open(context.Background())
	if err == nil {
		_ = m.Close(context.Background())
		t.Fatal("authzd started against a SpiceDB whose certificate its CA file does not sign")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("start with another CA: %v; want the certificate named", err)
	}
}

// startLocalSpiceDBTLS is startLocalSpiceDB serving gRPC over TLS.
func startLocalSpiceDBTLS(tb testing.TB, bin, certFile, keyFile string, ca *tlsfilestest.CA) spicedbServer {
	tb.Helper()
	key := "it-" + randomHex(16)
	addr := mustFreeAddr(tb)
	logPath := filepath.Join(tb.TempDir(), "spicedb.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--datastore-engine", "memory", "--grpc-addr", addr,
		"--grpc-tls-cert-path", certFile, "--grpc-tls-key-path", keyFile,
		"--http-enabled=false", "--metrics-enabled=false", "--dispatch-cluster-enabled=false", "--telemetry-endpoint=",
		"--skip-release-check", "--watch-api-heartbeat", "100ms", "--log-format", "json")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "SPICEDB_GRPC_PRESHARED_KEY="+key)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		tb.Fatalf("start spicedb: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logFile.Close() }()
	tb.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(roots, "")))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			tb.Fatalf("spicedb exited: %v\n%s", err, tailFile(logPath, 4096))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return spicedbServer{Endpoint: addr, Token: key}
		}
		if time.Now().After(deadline) {
			tb.Fatal(fmt.Errorf("spicedb (TLS) at %s not serving: %v\n%s", addr, err, tailFile(logPath, 4096)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
