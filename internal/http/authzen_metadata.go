package http

import (
	"net/http"
	"strings"
)

// authzenMetadata is the PDP metadata of the AuthZEN specification.
type authzenMetadata struct {
	PolicyDecisionPoint       string `json:"policy_decision_point"`
	AccessEvaluationEndpoint  string `json:"access_evaluation_endpoint"`
	AccessEvaluationsEndpoint string `json:"access_evaluations_endpoint"`
	SearchSubjectEndpoint     string `json:"search_subject_endpoint"`
	SearchResourceEndpoint    string `json:"search_resource_endpoint"`
	SearchActionEndpoint      string `json:"search_action_endpoint"`
}

// handleAuthZENConfiguration serves GET /.well-known/authzen-configuration.
// The PDP identifier is Options.PublicURL (AUTHZ_PUBLIC_URL); without it, the
// URL this request reached, which is right for a PEP that calls authzd directly.
func (s *Server) handleAuthZENConfiguration(w http.ResponseWriter, r *http.Request) {
	base := s.publicURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	base = strings.TrimRight(base, "/")
	w.Header().Set("Cache-Control", "max-age=300")
	writeJSON(w, http.StatusOK, authzenMetadata{
		PolicyDecisionPoint:       base,
		AccessEvaluationEndpoint:  base + "/access/v1/evaluation",
		AccessEvaluationsEndpoint: base + "/access/v1/evaluations",
		SearchSubjectEndpoint:     base + "/access/v1/search/subject",
		SearchResourceEndpoint:    base + "/access/v1/search/resource",
		SearchActionEndpoint:      base + "/access/v1/search/action",
	})
}
