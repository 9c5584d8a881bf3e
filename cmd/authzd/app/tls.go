package app

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/scailabs/authzd/client/tlsfiles"
	"github.com/scailabs/authzd/internal/metrics"
)

// loadTLS reads the server's certificate files, when configured, and
// exports their expiry; a change that does not load is logged and counted,
// and the files loaded before stay in use.
func (m *Main) loadTLS(met *metrics.Metrics) error {
	if m.cfg.TLSCertFile == "" {
		return nil
	}
	t := met.TLS()
	export := func(s *tlsfiles.Store) {
		t.Expiry("server", s.Leaf().NotAfter)
		t.Expiry("client_ca", s.CAExpiry())
	}
	s, err := tlsfiles.Load(tlsfiles.Files{CertFile: m.cfg.TLSCertFile, KeyFile: m.cfg.TLSKeyFile, CAFile: m.cfg.TLSClientCAFile},
		tlsfiles.Options{OnReload: func(s *tlsfiles.Store, err error) {
			t.Reload(err)
			if err != nil {
				m.logger.Error("TLS files changed but do not load; the ones loaded before stay in use",
					"err", tlsFileError(err, "AUTHZ_TLS_CERT_FILE", "AUTHZ_TLS_KEY_FILE", "AUTHZ_TLS_CLIENT_CA_FILE"))
				return
			}
			export(s)
			m.logger.Info("TLS files reloaded", "serial", s.Leaf().SerialNumber.String(), "not_after", s.Leaf().NotAfter)
		}})
	if err != nil {
		return tlsFileError(err, "AUTHZ_TLS_CERT_FILE", "AUTHZ_TLS_KEY_FILE", "AUTHZ_TLS_CLIENT_CA_FILE")
	}
	export(s)
	m.tls = s
	return nil
}

// spiceDBTLS is the TLS configuration of connections to the external
// SpiceDB when AUTHZ_SPICEDB_CA_FILE names its CA, else nil (system roots).
func (m *Main) spiceDBTLS(met *metrics.Metrics) (func(serverName string) *tls.Config, error) {
	if m.cfg.SpiceDBCAFile == "" {
		return nil, nil
	}
	t := met.TLS()
	s, err := tlsfiles.Load(tlsfiles.Files{CAFile: m.cfg.SpiceDBCAFile}, tlsfiles.Options{OnReload: func(s *tlsfiles.Store, err error) {
		t.Reload(err)
		if err != nil {
			m.logger.Error("AUTHZ_SPICEDB_CA_FILE changed but does not load; the CA loaded before stays in use", "err", err)
			return
		}
		t.Expiry("spicedb_ca", s.CAExpiry())
	}})
	if err != nil {
		return nil, fmt.Errorf("AUTHZ_SPICEDB_CA_FILE: %w", err)
	}
	t.Expiry("spicedb_ca", s.CAExpiry())
	return s.ClientConfig, nil
}

func (m *Main) tlsMode() string {
	switch {
	case m.tls == nil:
		return "off"
	case m.cfg.TLSClientCAFile != "":
		return "mutual"
	default:
		return "on"
	}
}

// probeRoutes are what AUTHZ_PROBE_ADDR serves: no route there takes a token.
var probeRoutes = []string{"/healthz", "/readyz", "/metrics"}

// serveProbe serves the probe routes in plain HTTP on AUTHZ_PROBE_ADDR, so
// that kubelet and Prometheus reach them when the API requires client
// certificates. They answer as on the API's listener, draining included.
func (m *Main) serveProbe() error {
	if m.cfg.ProbeAddr == "" {
		return nil
	}
	var err error
	if m.probeListener, err = net.Listen("tcp", m.cfg.ProbeAddr); err != nil {
		return fmt.Errorf("listen on AUTHZ_PROBE_ADDR %s: %w", m.cfg.ProbeAddr, err)
	}
	mux := http.NewServeMux()
	for _, p := range probeRoutes {
		mux.Handle("GET "+p, m.drainer)
	}
	m.probe = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn)}
	go func() { _ = m.probe.Serve(m.probeListener) }()
	m.logger.Info("probes serving", "addr", m.probeListener.Addr().String(), "routes", probeRoutes)
	return nil
}

// ProbeURL is the base URL of AUTHZ_PROBE_ADDR's listener, or "" when unset.
func (m *Main) ProbeURL() string {
	if m.probeListener == nil {
		return ""
	}
	return "http://" + m.probeListener.Addr().String()
}

// Drain starts the graceful stop: /readyz answers 503 draining and every
// response closes its connection, while requests are still served. Close
// then shuts down as usual.
func (m *Main) Drain() {
	if m.drainer != nil {
		m.drainer.Start()
		m.logger.Info("draining: /readyz answers 503 until shutdown")
	}
}
