package spicedb

import (
	"context"
	"crypto/tls"
	"net"

	"google.golang.org/grpc/credentials"
)

// reloadingTLS is gRPC's TLS credentials with a configuration made for each
// connection, so that a CA file read again is used by the next connection.
type reloadingTLS struct {
	config func(serverName string) *tls.Config
}

var _ credentials.TransportCredentials = reloadingTLS{}

func (r reloadingTLS) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	// An empty server name is filled from the authority by gRPC's own credentials.
	return credentials.NewTLS(r.config("")).ClientHandshake(ctx, authority, conn)
}

func (r reloadingTLS) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(r.config("")).ServerHandshake(conn)
}

func (r reloadingTLS) Info() credentials.ProtocolInfo { return credentials.NewTLS(r.config("")).Info() }

func (r reloadingTLS) Clone() credentials.TransportCredentials { return r }

//nolint:staticcheck // part of the interface gRPC still requires
func (r reloadingTLS) OverrideServerName(string) error { return nil }
