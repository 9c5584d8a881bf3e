package tlsfiles_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/authzd/client/tlsfiles"
	"github.com/scailabs/authzd/client/tlsfiles/tlsfilestest"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	ca := tlsfilestest.MustCA(t, "test CA")
	p := ca.MustIssue(t, tlsfilestest.Leaf{})
	other := ca.MustIssue(t, tlsfilestest.Leaf{})
	cert := tlsfilestest.MustWrite(t, dir, "tls.crt", p.Cert)
	key := tlsfilestest.MustWrite(t, dir, "tls.key", p.Key)
	otherKey := tlsfilestest.MustWrite(t, dir, "other.key", other.Key)
	caFile := tlsfilestest.MustWrite(t, dir, "ca.crt", ca.PEM)
	notPEM := tlsfilestest.MustWrite(t, dir, "junk", []byte("not a certificate\n"))
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		name  string
		files tlsfiles.Files
		role  tlsfiles.Role // "" for no error
	}{
		{"OK", tlsfiles.Files{CertFile: cert, KeyFile: key, CAFile: caFile}, ""},
		{"OKCAOnly", tlsfiles.Files{CAFile: caFile}, ""},
		{"ErrCertWithoutKey", tlsfiles.Files{CertFile: cert}, tlsfiles.RoleKey},
		{"ErrKeyWithoutCert", tlsfiles.Files{KeyFile: key}, tlsfiles.RoleCert},
		{"ErrMissingKey", tlsfiles.Files{CertFile: cert, KeyFile: missing}, tlsfiles.RoleKey},
		{"ErrMissingCert", tlsfiles.Files{CertFile: missing, KeyFile: key}, tlsfiles.RoleCert},
		{"ErrKeyMismatch", tlsfiles.Files{CertFile: cert, KeyFile: otherKey}, tlsfiles.RoleCert},
		{"ErrCANotPEM", tlsfiles.Files{CAFile: notPEM}, tlsfiles.RoleCA},
		{"ErrCAMissing", tlsfiles.Files{CAFile: missing}, tlsfiles.RoleCA},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := tlsfiles.Load(c.files, tlsfiles.Options{})
			if c.role == "" {
				if err != nil || s == nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			var fe *tlsfiles.FileError
			if !errors.As(err, &fe) || fe.Role != c.role {
				t.Fatalf("Load: %v; want a %s file error", err, c.role)
			}
		})
	}
}

// TestReloadSymlinkSwap: a Secret updated the kubelet's way is served from
// the next check on; a pair that does not load is reported once and the one
// before stays.
func TestReloadSymlinkSwap(t *testing.T) {
	ca := tlsfilestest.MustCA(t, "test CA")
	sec := tlsfilestest.MustSecret(t)
	first := ca.MustIssue(t, tlsfilestest.Leaf{})
	sec.MustUpdate(t, map[string][]byte{"tls.crt": first.Cert, "tls.key": first.Key})
	var mu sync.Mutex
	var reports []error
	s, err := tlsfiles.Load(tlsfiles.Files{CertFile: sec.Path("tls.crt"), KeyFile: sec.Path("tls.key")},
		tlsfiles.Options{Interval: 10 * time.Millisecond, OnReload: func(_ *tlsfiles.Store, err error) {
			mu.Lock()
			defer mu.Unlock()
			reports = append(reports, err)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Leaf().SerialNumber; got.Cmp(first.Serial) != 0 {
		t.Fatalf("serial %v, want %v", got, first.Serial)
	}
	second := ca.MustIssue(t, tlsfilestest.Leaf{})
	sec.MustUpdate(t, map[string][]byte{"tls.crt": second.Cert, "tls.key": second.Key})
	time.Sleep(20 * time.Millisecond)
	s.Check()
	if got := s.Leaf().SerialNumber; got.Cmp(second.Serial) != 0 {
		t.Fatalf("after the swap: serial %v, want %v", got, second.Serial)
	}

	third := ca.MustIssue(t, tlsfilestest.Leaf{})
	sec.MustUpdate(t, map[string][]byte{"tls.crt": third.Cert, "tls.key": first.Key}) // key of another certificate
	for range 3 {
		time.Sleep(20 * time.Millisecond)
		s.Check()
	}
	if got := s.Leaf().SerialNumber; got.Cmp(second.Serial) != 0 {
		t.Fatalf("after a broken pair: serial %v, want the previous %v", got, second.Serial)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 2 || reports[0] != nil || reports[1] == nil {
		t.Fatalf("reports %v; want one success, then one error", reports)
	}
}

// TestMutualTLS: a server of ServerConfig with a CA file refuses clients
// without a certificate, with one of another CA and with an expired one, and
// Refused blames the client's certificate; a client that does not trust the
// server's CA blames its CA file.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlsfilestest.MustCA(t, "test CA")
	otherCA := tlsfilestest.MustCA(t, "other CA")
	srv := ca.MustIssue(t, tlsfilestest.Leaf{})
	server, err := tlsfiles.Load(tlsfiles.Files{
		CertFile: tlsfilestest.MustWrite(t, dir, "srv.crt", srv.Cert), KeyFile: tlsfilestest.MustWrite(t, dir, "srv.key", srv.Key),
		CAFile: tlsfilestest.MustWrite(t, dir, "ca.crt", ca.PEM)}, tlsfiles.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	hs.TLS = server.ServerConfig()
	hs.StartTLS()
	defer hs.Close()

	caFile := filepath.Join(dir, "ca.crt")
	clientFiles := func(name string, c *tlsfilestest.CA, l tlsfilestest.Leaf) tlsfiles.Files {
		p := c.MustIssue(t, l)
		return tlsfiles.Files{CAFile: caFile, CertFile: tlsfilestest.MustWrite(t, dir, name+".crt", p.Cert),
			KeyFile: tlsfilestest.MustWrite(t, dir, name+".key", p.Key)}
	}
	for _, c := range []struct {
		name  string
		files tlsfiles.Files
		blame tlsfiles.Role // "" when the request succeeds
	}{
		{"OK", clientFiles("good", ca, tlsfilestest.Leaf{Client: true}), ""},
		{"ErrNoCertificate", tlsfiles.Files{CAFile: caFile}, tlsfiles.RoleCert},
		{"ErrOtherCA", clientFiles("other", otherCA, tlsfilestest.Leaf{Client: true}), tlsfiles.RoleCert},
		{"ErrExpired", clientFiles("expired", ca, tlsfilestest.Leaf{Client: true, NotAfter: time.Now().Add(-time.Hour)}), tlsfiles.RoleCert},
		{"ErrServerNotTrusted", tlsfiles.Files{CAFile: tlsfilestest.MustWrite(t, dir, "other-ca.crt", otherCA.PEM)}, tlsfiles.RoleCA},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := tlsfiles.Load(c.files, tlsfiles.Options{})
			if err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Transport: &http.Transport{DialTLSContext: s.DialTLSContext("")}}
			resp, err := hc.Get(hs.URL)
			if c.blame == "" {
				if err != nil {
					t.Fatalf("GET: %v", err)
				}
				resp.Body.Close()
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET answered %s; want the handshake refused", resp.Status)
			}
			if role, ok := tlsfiles.Refused(err); !ok || role != c.blame {
				t.Fatalf("Refused(%v) = %q, %v; want %q", err, role, ok, c.blame)
			}
		})
	}
}

// TestCAReload: a client reads its CA file again, so a server whose
// certificate comes from a new CA is trusted once the file names it.
func TestCAReload(t *testing.T) {
	dir := t.TempDir()
	oldCA, newCA := tlsfilestest.MustCA(t, "old CA"), tlsfilestest.MustCA(t, "new CA")
	srv := newCA.MustIssue(t, tlsfilestest.Leaf{})
	pair, err := tls.X509KeyPair(srv.Cert, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	hs.StartTLS()
	defer hs.Close()
	caFile := tlsfilestest.MustWrite(t, dir, "ca.crt", oldCA.PEM)
	s, err := tlsfiles.Load(tlsfiles.Files{CAFile: caFile}, tlsfiles.Options{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{DialTLSContext: s.DialTLSContext(""), DisableKeepAlives: true}}
	if resp, err := hc.Get(hs.URL); err == nil {
		resp.Body.Close()
		t.Fatal("the old CA trusted the new CA's server")
	}
	if err := os.WriteFile(caFile, append(append([]byte{}, oldCA.PEM...), newCA.PEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	resp, err := hc.Get(hs.URL)
	if err != nil {
		t.Fatalf("after the CA file names the new CA: %v", err)
	}
	resp.Body.Close()
}
