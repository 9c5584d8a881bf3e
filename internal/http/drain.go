package http

import (
	"net/http"
	"sync/atomic"
)

// Drainer wraps the API for a graceful stop. Once Start is called, /readyz
// answers 503 {"status":"draining"}, so that load balancers and Kubernetes
// take the instance out of rotation, while every other request is still
// served, with Connection: close so that clients move their connections to
// another instance.
type Drainer struct {
	next     http.Handler
	draining atomic.Bool
}

// NewDrainer wraps next.
func NewDrainer(next http.Handler) *Drainer { return &Drainer{next: next} }

// Start begins draining; it cannot be undone.
func (d *Drainer) Start() { d.draining.Store(true) }

// Draining reports whether Start was called.
func (d *Drainer) Draining() bool { return d.draining.Load() }

// ServeHTTP implements http.Handler.
func (d *Drainer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d.draining.Load() {
		w.Header().Set("Connection", "close")
		if r.URL.Path == "/readyz" && r.Method == http.MethodGet {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
			return
		}
	}
	d.next.ServeHTTP(w, r)
}
