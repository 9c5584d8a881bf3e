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
	Tenants   []string   `json:"tenants,omitempty"`
	Token     string     `json:"token,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

func toTokenAnswer(t authz.Token) tokenAnswer {
	return tokenAnswer{ID: t.ID, Name: t.Name, Scopes: t.Scopes, Tenants: t.Tenants, CreatedAt: t.CreatedAt, RevokedAt: t.RevokedAt}
}

// tokenEvent records token management in the audit log, without the secret.
func (s *Server) tokenEvent(r *http.Request, action string, t authz.Token) authz.Event {
	details := map[string]any{"name": t.Name, "scopes": t.Scopes}
	if t.Tenants != nil {
		details["tenants"] = t.Tenants
	}
	return authz.Event{
		OccurredAt: time.Now(), Module: authz.AuditModule, Action: action,
		ActorUserID: actorFrom(r.Context()), ResourceType: "token", ResourceID: t.ID,
		Decision: authz.DecisionAllowed, DecisionID: newDecisionID(), Client: clientName(tokenFrom(r.Context())),
		RequestID: RequestID(r.Context()), Details: details,
	}
}

// TokenRequest is what a new token is made of (POST /v1/tokens).
type TokenRequest struct {
	Name    string   `json:"name"`
	Scopes  []string `json:"scopes"`
	Tenants []string `json:"tenants,omitempty"`
}

// validate checks the request, and that the calling token holds every scope
// and tenant it asks for (a token never mints more than it holds).
func (b TokenRequest) validate(caller authz.Token) error {
	if b.Name == "" || len(b.Name) > 128 {
		return authz.Errorf(authz.EINVALID, "name is required (at most 128 bytes)")
	}
	if err := authz.ValidateScopes(b.Scopes); err != nil {
		return err
	}
	if err := authz.ValidateTenants(b.Tenants); err != nil {
		return err
	}
	if !caller.Covers(b.Scopes, b.Tenants) {
		return authz.Errorf(authz.EFORBIDDEN, "token %q cannot mint a token with more scopes or tenants than its own", caller.Name)
	}
	return nil
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name    string    `json:"name"`
		Scopes  []string  `json:"scopes"`
		Tenants *[]string `json:"tenants"`
	}
	if err := decode(r, &body, false); err != nil {
		s.Error(w, r, err)
		return
	}
	req := TokenRequest{Name: body.Name, Scopes: body.Scopes}
	if body.Tenants != nil {
		// Present, even as [] (which validation refuses): not "every tenant".
		req.Tenants = *body.Tenants
		if req.Tenants == nil {
			req.Tenants = []string{}
		}
	}
	t, secret, err := s.CreateToken(r, req)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	a := toTokenAnswer(t)
	a.Token = secret
	writeJSON(w, http.StatusCreated, a)
}

// CreateToken makes a token on behalf of the request's token (the route's and
// the console's one way): validated, within the caller's reach, audited.
func (s *Server) CreateToken(r *http.Request, req TokenRequest) (authz.Token, string, error) {
	if err := req.validate(tokenFrom(r.Context())); err != nil {
		return authz.Token{}, "", err
	}
	t, secret, err := s.store.CreateToken(r.Context(), req.Name, req.Scopes, req.Tenants)
	if err != nil {
		return authz.Token{}, "", err
	}
	if err := s.record(r, s.tokenEvent(r, "token.create", t)); err != nil {
		return authz.Token{}, "", err
	}
	return t, secret, nil
}

// ListTokens lists the tokens within the request token's tenants.
func (s *Server) ListTokens(r *http.Request) ([]authz.Token, error) {
	tokens, err := s.store.ListTokens(r.Context())
	if err != nil {
		return nil, err
	}
	caller := tokenFrom(r.Context())
	out := tokens[:0]
	for _, t := range tokens {
		if caller.Covers(nil, t.Tenants) {
			out = append(out, t)
		}
	}
	return out, nil
}

func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request) {
	tokens, err := s.ListTokens(r)
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

// RevokeToken revokes a token within the request token's tenants, audited.
func (s *Server) RevokeToken(r *http.Request, id string) error {
	if err := authz.ValidateID("token_id", id); err != nil {
		return err
	}
	if caller := tokenFrom(r.Context()); caller.Scoped() {
		t, err := s.store.Token(r.Context(), id)
		if err != nil {
			return err
		}
		if !caller.Covers(nil, t.Tenants) {
			return authz.Errorf(authz.EFORBIDDEN, "token %q reaches %v; token %q reaches tenants outside them", caller.Name, caller.Tenants, id)
		}
	}
	if err := s.store.RevokeToken(r.Context(), id); err != nil {
		return err
	}
	s.auth.forget(id)
	return s.record(r, s.tokenEvent(r, "token.revoke", authz.Token{ID: id}))
}

func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	if err := s.RevokeToken(r, chi.URLParam(r, "token_id")); err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}
