package http

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// ShadowReporter summarises the shadowed checks of the audit log.
type ShadowReporter interface {
	ShadowReport(ctx context.Context, q authz.ShadowQuery) (authz.ShadowReport, error)
}

// shadow records a legacy answer sent with a check in the check's audit row:
// the answer itself stays authzd's.
func shadow(legacy *bool) func(*authz.Event) {
	return func(e *authz.Event) {
		if legacy == nil {
			return
		}
		if e.Details == nil {
			e.Details = map[string]any{}
		}
		e.Details[authz.DetailLegacyAllowed] = *legacy
		e.Details[authz.DetailShadowAgreed] = *legacy == (e.Decision == authz.DecisionAllowed)
	}
}

// Shadow report limits on the disagreement groups listed.
const (
	defaultShadowLimit = 100
	maxShadowLimit     = 1000
)

func (s *Server) handleShadowReport(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := authz.ShadowQuery{TenantID: v.Get("tenant_id"), Limit: defaultShadowLimit, Until: time.Now()}
	var err error
	if v.Get("since") == "" {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "since is required (RFC 3339, e.g. 2026-05-01T00:00:00Z)"))
		return
	}
	if q.Since, err = time.Parse(time.RFC3339, v.Get("since")); err != nil {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "since must be an RFC 3339 time, e.g. 2026-05-01T00:00:00Z"))
		return
	}
	if u := v.Get("until"); u != "" {
		if q.Until, err = time.Parse(time.RFC3339, u); err != nil {
			s.Error(w, r, authz.Errorf(authz.EINVALID, "until must be an RFC 3339 time, e.g. 2026-05-02T00:00:00Z"))
			return
		}
	}
	if q.TenantID != "" {
		if err := authz.ValidateID("tenant_id", q.TenantID); err != nil {
			s.Error(w, r, err)
			return
		}
	}
	if l := v.Get("limit"); l != "" {
		if q.Limit, err = strconv.Atoi(l); err != nil || q.Limit < 1 || q.Limit > maxShadowLimit {
			s.Error(w, r, authz.Errorf(authz.EINVALID, "limit must be 1 to %d", maxShadowLimit))
			return
		}
	}
	rep, err := s.shadow.ShadowReport(r.Context(), q)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
