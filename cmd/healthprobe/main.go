// Command healthprobe is the health check of the images `make images` builds FROM scratch, which have
// no shell and no HTTP client.
//
//	healthprobe -url http://127.0.0.1:8080/healthz   exit 0 when the GET answers 2xx
//	healthprobe -url https://... [-ca-file F] [-client-cert F -client-key F] [-server-name N]
//	                                                 the same over TLS (mutual with a client certificate);
//	                                                 exit 3, naming the flag, when the handshake is refused
//	healthprobe -addr localhost:50051 [-service S]   exit 0 when the gRPC health check answers SERVING
//
// The gRPC form takes grpc_health_probe's flags, so the locally built SpiceDB image installs it as
// /usr/local/bin/grpc_health_probe and a compose healthcheck works with it and the official image alike.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/scailabs/authzd/client/tlsfiles"
)

// exitRefused is the exit status of a TLS handshake refused for its certificates.
const exitRefused = 3

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "healthprobe:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode is 3 for a TLS handshake refused for its certificates, else 1.
func exitCode(err error) int {
	if _, ok := tlsfiles.Refused(err); ok {
		return exitRefused
	}
	return 1
}

func run(args []string) error {
	fs := flag.NewFlagSet("healthprobe", flag.ContinueOnError)
	url := fs.String("url", "", "HTTP URL to GET; healthy on a 2xx answer")
	addr := fs.String("addr", "", "host:port of a gRPC server to ask grpc.health.v1.Health/Check (plaintext)")
	service := fs.String("service", "", "service name for the gRPC health check (empty: the server as a whole)")
	connectTimeout := fs.Duration("connect-timeout", time.Second, "gRPC: time to connect")
	rpcTimeout := fs.Duration("rpc-timeout", time.Second, "time for the check itself")
	var files tlsfiles.Files
	fs.StringVar(&files.CAFile, "ca-file", "", "HTTPS: PEM file of the CA that signs the server's certificate (default: the system's)")
	fs.StringVar(&files.CertFile, "client-cert", "", "HTTPS: PEM client certificate for mutual TLS")
	fs.StringVar(&files.KeyFile, "client-key", "", "HTTPS: PEM key of -client-cert")
	serverName := fs.String("server-name", "", "HTTPS: name to verify the server's certificate against (default: the URL's host)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *url != "" && *addr == "":
		return probeHTTP(*url, *rpcTimeout, files, *serverName)
	case *addr != "" && *url == "":
		return probeGRPC(*addr, *service, *connectTimeout+*rpcTimeout)
	default:
		return errors.New("give exactly one of -url or -addr")
	}
}

// probeHTTP is a plain GET, written here again rather than shared: healthprobe
// is a tiny static binary of its own for FROM-scratch images and imports
// nothing of authzd but the TLS file loader (standard library only).
func probeHTTP(url string, timeout time.Duration, files tlsfiles.Files, serverName string) error {
	hc := http.DefaultClient
	if files != (tlsfiles.Files{}) || serverName != "" {
		s, err := tlsfiles.Load(files, tlsfiles.Options{})
		if err != nil {
			return fmt.Errorf("%s: %w", flagOf(err), err)
		}
		hc = &http.Client{Transport: &http.Transport{DialTLSContext: s.DialTLSContext(serverName)}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if role, ok := tlsfiles.Refused(err); ok {
		if role == tlsfiles.RoleCA {
			return fmt.Errorf("the server's certificate is not trusted (-ca-file, -server-name): %w", err)
		}
		return fmt.Errorf("the server refused the client certificate (-client-cert, -client-key): %w", err)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// flagOf names the flag of the file a tlsfiles error is about.
func flagOf(err error) string {
	if fe, ok := err.(*tlsfiles.FileError); ok {
		return map[tlsfiles.Role]string{tlsfiles.RoleCA: "-ca-file", tlsfiles.RoleCert: "-client-cert", tlsfiles.RoleKey: "-client-key"}[fe.Role]
	}
	return "TLS files"
}

func probeGRPC(addr, service string, timeout time.Duration) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("health check %s: %w", addr, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health check %s: %s", addr, resp.GetStatus())
	}
	return nil
}
