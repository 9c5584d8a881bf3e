package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/scailabs/authzd/client/tlsfiles/tlsfilestest"
	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

// TestTLS probes an authzd that requires client certificates.
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
	url := a.URL + "/readyz"
	for _, c := range []struct {
		name string
		args []string
		code int    // 0: healthy
		flag string // named in the error
	}{
		{"OK", []string{"-ca-file", caFile, "-client-cert", cert, "-client-key", key}, 0, ""},
		{"OKServerName", []string{"-ca-file", caFile, "-client-cert", cert, "-client-key", key, "-server-name", "localhost"}, 0, ""},
		{"ErrNoCertificate", []string{"-ca-file", caFile}, exitRefused, "-client-cert"},
		{"ErrOtherCA", []string{"-ca-file", otherCA, "-client-cert", cert, "-client-key", key}, exitRefused, "-ca-file"},
		{"ErrWrongServerName", []string{"-ca-file", caFile, "-client-cert", cert, "-client-key", key, "-server-name", "authzd.example"}, exitRefused, "-server-name"},
		{"ErrKeyUnreadable", []string{"-ca-file", caFile, "-client-cert", cert, "-client-key", filepath.Join(dir, "nope")}, 1, "-client-key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := run(append([]string{"-url", url, "-rpc-timeout", "5s"}, c.args...))
			switch {
			case c.code == 0 && err != nil:
				t.Fatalf("want healthy: %v", err)
			case c.code == 0:
				return
			case err == nil:
				t.Fatal("healthy; want an error")
			}
			if got := exitCode(err); got != c.code || !strings.Contains(err.Error(), c.flag) {
				t.Fatalf("exit %d, %v; want exit %d naming %s", got, err, c.code, c.flag)
			}
		})
	}
}
