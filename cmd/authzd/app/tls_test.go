package app_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scailabs/authzd/client"
	"github.com/scailabs/authzd/client/tlsfiles"
	"github.com/scailabs/authzd/client/tlsfiles/tlsfilestest"
	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

const tlsCheckBody = `{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create"}`

// tlsWorld is an authzd serving mutual TLS from a Secret mounted the
// Kubernetes way, with its probes on a plain listener.
type tlsWorld struct {
	a      apptest.Authzd
	m      *app.Main
	ca     *tlsfilestest.CA
	secret *tlsfilestest.Secret
	dir    string
	caFile string
	// client is a client certificate of ca.
	clientCert, clientKey string
}

func mustTLSWorld(t *testing.T) *tlsWorld {
	t.Helper()
	w := &tlsWorld{ca: tlsfilestest.MustCA(t, "test CA"), secret: tlsfilestest.MustSecret(t), dir: t.TempDir()}
	p := w.ca.MustIssue(t, tlsfilestest.Leaf{})
	w.secret.MustUpdate(t, map[string][]byte{"tls.crt": p.Cert, "tls.key": p.Key, "ca.crt": w.ca.PEM})
	w.caFile = tlsfilestest.MustWrite(t, w.dir, "ca.crt", w.ca.PEM)
	cp := w.ca.MustIssue(t, tlsfilestest.Leaf{Client: true})
	w.clientCert = tlsfilestest.MustWrite(t, w.dir, "client.crt", cp.Cert)
	w.clientKey = tlsfilestest.MustWrite(t, w.dir, "client.key", cp.Key)
	w.a, w.m = apptest.MustStartWith(t, "memory", func(c *app.Config) {
		c.TLSCertFile, c.TLSKeyFile = w.secret.Path("tls.crt"), w.secret.Path("tls.key")
		c.TLSClientCAFile, c.ProbeAddr = w.secret.Path("ca.crt"), "127.0.0.1:0"
	})
	return w
}

// httpClient is a client of the test CA presenting files (none when empty).
func (w *tlsWorld) httpClient(t *testing.T, files tlsfiles.Files) *http.Client {
	t.Helper()
	files.CAFile = w.caFile
	s, err := tlsfiles.Load(files, tlsfiles.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{DialTLSContext: s.DialTLSContext(""), DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

func check(hc *http.Client, url, token string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/permissions/check", strings.NewReader(tlsCheckBody))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestTLS(t *testing.T) {
	w := mustTLSWorld(t)
	if !strings.HasPrefix(w.a.URL, "https://") {
		t.Fatalf("URL %s; want https", w.a.URL)
	}
	good := tlsfiles.Files{CertFile: w.clientCert, KeyFile: w.clientKey}

	t.Run("OK", func(t *testing.T) {
		status, body, err := check(w.httpClient(t, good), w.a.URL, w.a.AdminToken)
		if err != nil || status != http.StatusOK || !strings.Contains(body, `"allowed":`) {
			t.Fatalf("check: %d %s %v", status, body, err)
		}
	})
	t.Run("ErrPlainHTTP", func(t *testing.T) {
		status, body, err := check(http.DefaultClient, "http://"+strings.TrimPrefix(w.a.URL, "https://"), w.a.AdminToken)
		if err == nil && (status == http.StatusOK || strings.Contains(body, "allowed")) {
			t.Fatalf("plain HTTP on the TLS address: %d %s", status, body)
		}
	})
	t.Run("ErrNoToken", func(t *testing.T) {
		status, body, err := check(w.httpClient(t, good), w.a.URL, "")
		if err != nil || status != http.StatusUnauthorized {
			t.Fatalf("certificate without a token: %d %s %v; want 401", status, body, err)
		}
	})
	otherCA := tlsfilestest.MustCA(t, "other CA")
	pair := func(name string, ca *tlsfilestest.CA, l tlsfilestest.Leaf) tlsfiles.Files {
		p := ca.MustIssue(t, l)
		return tlsfiles.Files{CertFile: tlsfilestest.MustWrite(t, w.dir, name+".crt", p.Cert), KeyFile: tlsfilestest.MustWrite(t, w.dir, name+".key", p.Key)}
	}
	for _, c := range []struct {
		name  string
		files tlsfiles.Files
	}{
		{"ErrNoCertificate", tlsfiles.Files{}},
		{"ErrOtherCA", pair("other", otherCA, tlsfilestest.Leaf{Client: true})},
		{"ErrExpired", pair("expired", w.ca, tlsfilestest.Leaf{Client: true, NotAfter: time.Now().Add(-time.Minute)})},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body, err := check(w.httpClient(t, c.files), w.a.URL, w.a.AdminToken)
			if err == nil {
				t.Fatalf("answered %d %s; want the handshake refused", status, body)
			}
			if role, ok := tlsfiles.Refused(err); !ok || role != tlsfiles.RoleCert {
				t.Fatalf("error %v; want a refused client certificate", err)
			}
		})
	}

	t.Run("GoClient", func(t *testing.T) {
		ctx := context.Background()
		c, err := client.New(w.a.URL, w.a.AdminToken, client.WithTLSFiles(w.caFile, w.clientCert, w.clientKey))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.HasModulePermission(ctx, "t1", "alice", "scaibunker:create"); err != nil {
			t.Fatalf("with its certificate: %v", err)
		}
		bare, err := client.New(w.a.URL, w.a.AdminToken, client.WithTLSFiles(w.caFile, "", ""))
		if err != nil {
			t.Fatal(err)
		}
		_, err = bare.HasModulePermission(ctx, "t1", "alice", "scaibunker:create")
		if role, ok := tlsfiles.Refused(err); !ok || role != tlsfiles.RoleCert {
			t.Fatalf("without a certificate: %v; want the handshake refused", err)
		}
		if _, err := client.New(w.a.URL, w.a.AdminToken, client.WithTLSFiles(filepath.Join(w.dir, "missing"), "", "")); err == nil {
			t.Fatal("New with a missing CA file succeeded")
		}
	})

	t.Run("Probe", func(t *testing.T) {
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/v1/permissions/keys": 404} {
			resp, err := http.Get(w.m.ProbeURL() + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET %s on the probe address: %d; want %d", path, resp.StatusCode, want)
			}
			if path == "/metrics" && !strings.Contains(string(b), `authzd_tls_certificate_expiry_timestamp_seconds{certificate="server"}`) {
				t.Errorf("metrics lack the server certificate's expiry")
			}
		}
	})
}

// TestTLSReloadUnderLoad: the Secret's pair is swapped while clients check
// without pause; new connections get the new certificate within 5 s, no
// request fails, and a broken pair afterwards keeps the new one and is counted.
func TestTLSReloadUnderLoad(t *testing.T) {
	w := mustTLSWorld(t)
	good := tlsfiles.Files{CertFile: w.clientCert, KeyFile: w.clientKey}
	serial := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", strings.TrimPrefix(w.a.URL, "https://"), w.clientTLS(t, good))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := w.httpClient(t, good) // a new connection per request: each handshake sees the files of the moment
			for ctx.Err() == nil {
				status, body, err := check(hc, w.a.URL, w.a.AdminToken)
				if err != nil || status != http.StatusOK {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s %v", status, body, err))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	next := w.ca.MustIssue(t, tlsfilestest.Leaf{})
	w.secret.MustUpdate(t, map[string][]byte{"tls.crt": next.Cert, "tls.key": next.Key, "ca.crt": w.ca.PEM})
	swapped := time.Now()
	for serial() != next.Serial.String() {
		if time.Since(swapped) > 5*time.Second {
			t.Fatalf("still serving serial %s 5 s after the swap", before)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("new certificate served %v after the swap", time.Since(swapped).Round(10*time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d checks answered, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}

	broken := w.ca.MustIssue(t, tlsfilestest.Leaf{})
	w.secret.MustUpdate(t, map[string][]byte{"tls.crt": broken.Cert, "tls.key": next.Key, "ca.crt": w.ca.PEM})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(w.metrics(t), `authzd_tls_reloads_total{result="error"} 1`) {
		if time.Now().After(deadline) {
			t.Fatalf("the broken pair was not counted:\n%s", w.metrics(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := serial(); got != next.Serial.String() {
		t.Fatalf("after a broken pair: serial %s; want the previous %s", got, next.Serial)
	}
	if m := w.metrics(t); !strings.Contains(m, `authzd_tls_reloads_total{result="ok"} 1`) {
		t.Errorf("the good swap was not counted once:\n%s", m)
	}
}

func (w *tlsWorld) clientTLS(t *testing.T, files tlsfiles.Files) *tls.Config {
	t.Helper()
	files.CAFile = w.caFile
	s, err := tlsfiles.Load(files, tlsfiles.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s.ClientConfig("127.0.0.1")
}

func (w *tlsWorld) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(w.m.ProbeURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestTLSStartRefused: start refuses half a pair and an unreadable file,
// naming the variable.
func TestTLSStartRefused(t *testing.T) {
	dir := t.TempDir()
	ca := tlsfilestest.MustCA(t, "test CA")
	p := ca.MustIssue(t, tlsfilestest.Leaf{})
	cert := tlsfilestest.MustWrite(t, dir, "tls.crt", p.Cert)
	key := tlsfilestest.MustWrite(t, dir, "tls.key", p.Key)
	missing := filepath.Join(dir, "missing.pem")
	for _, c := range []struct {
		name, want string
		set        func(*app.Config)
	}{
		{"ErrCertOnly", "AUTHZ_TLS_KEY_FILE", func(c *app.Config) { c.TLSCertFile = cert }},
		{"ErrKeyOnly", "AUTHZ_TLS_CERT_FILE", func(c *app.Config) { c.TLSKeyFile = key }},
		{"ErrKeyUnreadable", "AUTHZ_TLS_KEY_FILE", func(c *app.Config) { c.TLSCertFile, c.TLSKeyFile = cert, missing }},
		{"ErrClientCAUnreadable", "AUTHZ_TLS_CLIENT_CA_FILE", func(c *app.Config) {
			c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = cert, key, missing
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := app.DefaultConfig()
			cfg.HTTPAddr, cfg.SpiceDBDatastore = "127.0.0.1:0", "memory"
			c.set(&cfg)
			err := cfg.Validate()
			if err == nil {
				err = app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))).Open(context.Background())
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("start: %v; want an error naming %s", err, c.want)
			}
			if errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
		})
	}
}

// TestTLSClientCAReload: a new client CA swapped into the Secret is required
// from then on: a client of the new CA is accepted within 5 s and one of the
// old CA refused.
func TestTLSClientCAReload(t *testing.T) {
	w := mustTLSWorld(t)
	newCA := tlsfilestest.MustCA(t, "new client CA")
	p := newCA.MustIssue(t, tlsfilestest.Leaf{Client: true})
	files := tlsfiles.Files{CertFile: tlsfilestest.MustWrite(t, w.dir, "new-client.crt", p.Cert), KeyFile: tlsfilestest.MustWrite(t, w.dir, "new-client.key", p.Key)}
	oldClient := tlsfiles.Files{CertFile: w.clientCert, KeyFile: w.clientKey}
	if _, _, err := check(w.httpClient(t, files), w.a.URL, w.a.AdminToken); err == nil {
		t.Fatal("a client of a CA not yet named was accepted")
	}
	srv := w.ca.MustIssue(t, tlsfilestest.Leaf{})
	w.secret.MustUpdate(t, map[string][]byte{"tls.crt": srv.Cert, "tls.key": srv.Key, "ca.crt": newCA.PEM})
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, _, err := check(w.httpClient(t, files), w.a.URL, w.a.AdminToken)
		if err == nil && status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a client of the new CA is still refused 5 s after the swap: %d %v", status, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, _, err := check(w.httpClient(t, oldClient), w.a.URL, w.a.AdminToken); err == nil {
		t.Fatal("a client of the old CA is still accepted after the swap")
	}
}
