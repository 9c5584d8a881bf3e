package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

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

// CheckpointAge exports how long ago this replica last knew the chain head
// to be signed (it signed it, or had already): it grows while checkpoints
// fail or the key is retired.
func (m *Metrics) CheckpointAge(age func() time.Duration) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "authzd_audit_checkpoint_age_seconds", Help: "Seconds since this replica last knew the audit chain head to be covered by its signed checkpoint.",
	}, func() float64 { return age().Seconds() }))
}

// dependencyTimeout bounds each dependency's probe at scrape time.
const dependencyTimeout = time.Second

// DependencyUp exports, for each dependency, whether it answers its probe
// (the same one /readyz runs) at scrape time: 1 up, 0 down.
func (m *Metrics) DependencyUp(probes map[string]func(ctx context.Context) error) {
	g := prometheus.NewDesc("authzd_dependency_up", "1 when the dependency answers (asked at scrape time, as /readyz asks), 0 when not.", []string{"dependency"}, nil)
	m.registry.MustRegister(&dependencyCollector{desc: g, probes: probes})
}

type dependencyCollector struct {
	desc   *prometheus.Desc
	probes map[string]func(ctx context.Context) error
}

func (c *dependencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *dependencyCollector) Collect(ch chan<- prometheus.Metric) {
	for name, probe := range c.probes {
		ctx, cancel := context.WithTimeout(context.Background(), dependencyTimeout)
		up := 0.0
		if probe(ctx) == nil {
			up = 1
		}
		cancel()
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, up, name)
	}
}
