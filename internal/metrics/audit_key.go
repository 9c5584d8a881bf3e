package metrics

import "github.com/prometheus/client_golang/prometheus"

// SigningKeyRetired exports whether a key rotation retired this replica's
// audit signing key (it then signs no checkpoints until restarted with the new one).
func (m *Metrics) SigningKeyRetired(retired func() bool) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "authzd_audit_signing_key_retired", Help: "1 when a key rotation retired this replica's audit signing key: it signs no checkpoints until restarted with the new key.",
	}, func() float64 {
		if retired() {
			return 1
		}
		return 0
	}))
}
