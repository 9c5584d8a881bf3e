package main

import "github.com/scailabs/authzd/client/tlsfiles"

func (e *env) tlsFiles() tlsfiles.Files {
	return tlsfiles.Files{CAFile: e.caFile, CertFile: e.clientCert, KeyFile: e.clientKey}
}

// tlsFlag names the flag of the file a tlsfiles error is about.
func tlsFlag(err error) string {
	fe, ok := err.(*tlsfiles.FileError)
	if !ok {
		return "TLS files"
	}
	return map[tlsfiles.Role]string{
		tlsfiles.RoleCA: "--ca-file", tlsfiles.RoleCert: "--client-cert", tlsfiles.RoleKey: "--client-key",
	}[fe.Role]
}

// refusal says which flag to look at when a TLS handshake failed.
func refusal(role tlsfiles.Role) string {
	if role == tlsfiles.RoleCA {
		return "TLS handshake failed: authzd's certificate is not trusted; check --ca-file ($AUTHZ_CA_FILE)"
	}
	return "TLS handshake refused by authzd: it did not accept the client certificate; check --client-cert and --client-key " +
		"($AUTHZ_CLIENT_CERT_FILE, $AUTHZ_CLIENT_KEY_FILE)"
}
