package main

import (
	"path/filepath"
	"testing"

	"github.com/scailabs/authzd/client/tlsfiles/tlsfilestest"
	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

// TestTLS: authzctl against an authzd that requires client certificates,
// with the files from flags and from the environment, and without them.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := tlsfilestest.MustCA(t, "test CA"), tlsfilestest.MustCA(t, "other CA")
	srv, cl := ca.MustIssue(t, tlsfilestest.Leaf{}), ca.MustIssue(t, tlsfilestest.Leaf{Client: true})
	caFile := tlsfilestest.MustWrite(t, dir, "ca.crt", ca.PEM)
	otherCA := tlsfilestest.MustWrite(t, dir, "other-ca.crt", other.PEM)
	cert, key := tlsfilestest.MustWrite(t, dir, "client.crt", cl.Cert), tlsfilestest.MustWrite(t, dir, "client.key", cl.Key)
	a, _ := apptest.MustStartWith(t, "memory", func(c *app.Config) {
		c.TLSCertFile = tlsfilestest.MustWrite(t, dir, "srv.crt", srv.Cert)
		c.TLSKeyFile = tlsfilestest.MustWrite(t, dir, "srv.key", srv.Key)
		c.TLSClientCAFile = caFile
	})
	base := map[string]string{"AUTHZ_URL": a.URL, "AUTHZ_TOKEN": a.AdminToken}
	with := func(kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}

	t.Run("OKFlags", func(t *testing.T) {
		MustOK(t, base, "keys", "--ca-file", caFile, "--client-cert", cert, "--client-key", key)
	})
	t.Run("OKEnvironment", func(t *testing.T) {
		MustOK(t, with("AUTHZ_CA_FILE", caFile, "AUTHZ_CLIENT_CERT_FILE", cert, "AUTHZ_CLIENT_KEY_FILE", key), "keys")
	})
	t.Run("ErrNoClientCertificate", func(t *testing.T) {
		MustFail(t, base, exitError, "--client-cert", "keys", "--ca-file", caFile)
	})
	t.Run("ErrServerNotTrusted", func(t *testing.T) {
		MustFail(t, base, exitError, "--ca-file", "keys", "--ca-file", otherCA, "--client-cert", cert, "--client-key", key)
	})
	t.Run("ErrKeyMissing", func(t *testing.T) {
		MustFail(t, base, exitUsage, "--client-key", "keys", "--ca-file", caFile, "--client-cert", cert)
	})
	t.Run("ErrKeyUnreadable", func(t *testing.T) {
		MustFail(t, base, exitUsage, "--client-key", "keys", "--ca-file", caFile, "--client-cert", cert, "--client-key", filepath.Join(dir, "nope"))
	})
}
