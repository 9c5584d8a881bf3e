package metrics

import "github.com/prometheus/client_golang/prometheus"

// WhatIfIncomplete registers authzd_whatif_incomplete_total and returns
// what counts one what-if that failed because its copy lacked an object it
// read. Call it once.
func (m *Metrics) WhatIfIncomplete() func() {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "authzd_whatif_incomplete_total",
		Help: "What-ifs that failed (503) because their copy of the tenant lacked an object the prediction read.",
	})
	m.registry.MustRegister(c)
	return c.Inc
}
