package http

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/scailabs/authzd/internal/authz"
)

// tokenAnswer is a token on the wire. The client module repeats it as
// client.Token: that module cannot import internal/.
type tokenAnswer struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	Token     string     `json:"token,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

func toTokenAnswer(t authz.Token) tokenAnswer {
	return tokenAnswer{ID: t.ID, Name: t.Name, Scopes: t.Scopes, CreatedAt: t.CreatedAt, RevokedAt: t.RevokedAt}
}

// tokenEvent records token management in the audit log, without the secret.
func (s *Server) tokenEvent(r *http.Request, action string, t authz.Token) authz.Event {
	return authz.Event{
		OccurredAt: time.Now(), Module: authz.AuditModule, Action: action,
		ActorUserID: actorFrom(r.Context()), ResourceType: "token", ResourceID: t.ID,
		Decision: authz.DecisionAllowed, DecisionID: newDecisionID(), Client: clientName(tokenFrom(r.Context())),
		RequestID: RequestID(r.Context()), Details: map[string]any{"name": t.Name, "scopes": t.Scopes},
	}
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if err := decode(r, &body, false); err != nil {
		s.Error(w, r, err)
		return
	}
	if body.Name == "" || len(body.Name) > 128 {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "name is required (at most 128 bytes)"))
		return
	}
	if err := authz.ValidateScopes(body.Scopes); err != nil {
		s.Error(w, r, err)
		return
	}
	t, secret, err := s.store.CreateToken(r.Context(), body.Name, body.Scopes)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if err := s.record(r, s.tokenEvent(r, "token.create", t)); err != nil {
		s.Error(w, r, err)
		return
	}
	a := toTokenAnswer(t)
	a.Token = secret
	writeJSON(w, http.StatusCreated, a)
}

func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request) {
	tokens, err := s.store.ListTokens(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	out := make([]tokenAnswer, len(tokens))
	for i, t := range tokens {
		out[i] = toTokenAnswer(t)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "token_id")
	if err := authz.ValidateID("token_id", id); err != nil {
		s.Error(w, r, err)
		return
	}
	if err := s.store.RevokeToken(r.Context(), id); err != nil {
		s.Error(w, r, err)
		return
	}
	s.auth.forget(id)
	if err := s.record(r, s.tokenEvent(r, "token.revoke", authz.Token{ID: id})); err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}
