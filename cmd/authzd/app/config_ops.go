package app

import (
	"fmt"
	"net"

	"github.com/scailabs/authzd/client/tlsfiles"
)

// validateOps checks the TLS, probe and drain settings.
func (c Config) validateOps() error {
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		if c.TLSCertFile == "" {
			return fmt.Errorf("AUTHZ_TLS_CERT_FILE is empty but AUTHZ_TLS_KEY_FILE is set: give both or neither")
		}
		return fmt.Errorf("AUTHZ_TLS_KEY_FILE is empty but AUTHZ_TLS_CERT_FILE is set: give both or neither")
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		return fmt.Errorf("AUTHZ_TLS_CLIENT_CA_FILE needs AUTHZ_TLS_CERT_FILE and AUTHZ_TLS_KEY_FILE (mutual TLS is TLS first)")
	}
	if c.SpiceDBCAFile != "" && (c.SpiceDBEndpoint == "" || c.SpiceDBInsecure) {
		return fmt.Errorf("AUTHZ_SPICEDB_CA_FILE needs AUTHZ_SPICEDB_ENDPOINT, with AUTHZ_SPICEDB_INSECURE off")
	}
	if c.ProbeAddr != "" {
		if _, _, err := net.SplitHostPort(c.ProbeAddr); err != nil {
			return fmt.Errorf("AUTHZ_PROBE_ADDR must be host:port, e.g. :8081, not %q", c.ProbeAddr)
		}
		if c.ProbeAddr == c.HTTPAddr || c.ProbeAddr == c.DebugAddr {
			return fmt.Errorf("AUTHZ_PROBE_ADDR must differ from AUTHZ_HTTP_ADDR and AUTHZ_DEBUG_ADDR")
		}
	}
	if c.ShutdownDrainDelay < 0 {
		return fmt.Errorf("AUTHZ_SHUTDOWN_DRAIN_DELAY must be 0 or more, not %s", c.ShutdownDrainDelay)
	}
	return nil
}

// tlsFileError names the setting of the file a *tlsfiles.FileError is about.
func tlsFileError(err error, cert, key, ca string) error {
	fe, ok := err.(*tlsfiles.FileError)
	if !ok {
		return err
	}
	name := map[tlsfiles.Role]string{tlsfiles.RoleCert: cert, tlsfiles.RoleKey: key, tlsfiles.RoleCA: ca}[fe.Role]
	return fmt.Errorf("%s: %w", name, err)
}
