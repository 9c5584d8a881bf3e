package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TLS are the collectors of the certificates authzd loads from files.
type TLS struct {
	reloads *prometheus.CounterVec
	expiry  *prometheus.GaugeVec
}

// TLS registers the certificate collectors (once) and returns them.
func (m *Metrics) TLS() *TLS {
	m.tlsOnce.Do(func() {
		m.tls = &TLS{
			reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "authzd_tls_reloads_total", Help: "Changed certificate files loaded (result ok) or refused, the files loaded before staying in use (result error).",
			}, []string{"result"}),
			expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "authzd_tls_certificate_expiry_timestamp_seconds", Help: "When the certificate in use expires (Unix time), by certificate: server, client_ca (the earliest in AUTHZ_TLS_CLIENT_CA_FILE), spicedb_ca.",
			}, []string{"certificate"}),
		}
		m.tls.reloads.WithLabelValues("ok")
		m.tls.reloads.WithLabelValues("error")
		m.registry.MustRegister(m.tls.reloads, m.tls.expiry)
	})
	return m.tls
}

// Reload counts one attempt to load changed files.
func (t *TLS) Reload(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	t.reloads.WithLabelValues(result).Inc()
}

// Expiry sets when a certificate in use expires; a zero time is not exported.
func (t *TLS) Expiry(certificate string, notAfter time.Time) {
	if notAfter.IsZero() {
		return
	}
	t.expiry.WithLabelValues(certificate).Set(float64(notAfter.Unix()))
}
