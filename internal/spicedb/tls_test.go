package spicedb

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/scailabs/authzd/client/tlsfiles"
	"github.com/scailabs/authzd/client/tlsfiles/tlsfilestest"
)

// TestReloadingTLS: connections to a gRPC server with a private CA verify
// against the CA file (AUTHZ_SPICEDB_CA_FILE), as it is when each
// connection is made.
func TestReloadingTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := tlsfilestest.MustCA(t, "spicedb CA"), tlsfilestest.MustCA(t, "other CA")
	p := ca.MustIssue(t, tlsfilestest.Leaf{})
	srvFiles, err := tlsfiles.Load(tlsfiles.Files{CertFile: tlsfilestest.MustWrite(t, dir, "srv.crt", p.Cert),
		KeyFile: tlsfilestest.MustWrite(t, dir, "srv.key", p.Key)}, tlsfiles.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(srvFiles.ServerConfig())))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	caFile := tlsfilestest.MustWrite(t, dir, "ca.crt", other.PEM)
	files, err := tlsfiles.Load(tlsfiles.Files{CAFile: caFile}, tlsfiles.Options{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	probe := func() error {
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(reloadingTLS{files.ClientConfig}))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := probe(); err == nil {
		t.Fatal("a server of another CA was trusted")
	}
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := probe(); err != nil {
		t.Fatalf("after the CA file names the server's CA: %v", err)
	}
}
