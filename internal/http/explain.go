package http

import (
	"net/http"
	"slices"
	"time"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/explain"
)

type explainAnswer struct {
	Allowed    bool         `json:"allowed"`
	CheckedAt  string       `json:"checked_at"`
	DecisionID string       `json:"decision_id"`
	Reasons    []string     `json:"reasons"`
	Trace      *authz.Trace `json:"trace"`
}

// handleExplain answers a check body with the decision and why: sentences
// built from SpiceDB's trace and the model's relationships at the same
// revision, and the trace itself. It is audited like a check, with action
// "explain".
func (s *Server) handleExplain(w http.ResponseWriter, r *http.Request) {
	c, err := s.decodeCheck(r)
	if err == nil {
		err = reaches(r, c.TenantID)
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	x, err := s.explainer.Explain(r.Context(), c)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	names, err := s.store.RoleNames(r.Context(), c.TenantID, slices.Concat(x.Facts.CustomRoles, x.Facts.GrantingRoles))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	reasons := explain.Reasons(explain.Input{Check: c, Explanation: x, KeyRoles: s.keyRoles[c.Key.String()], RoleNames: names})
	c.Action = "explain"
	e := s.checkEvent(r, c, x.Decision, time.Now())
	s.answerDecisions(w, r, explainAnswer{
		Allowed: x.Decision.Allowed, CheckedAt: x.Decision.CheckedAt, DecisionID: e.DecisionID, Reasons: reasons, Trace: x.Trace,
	}, e)
}
