package http

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"maps"
	"strings"

	"github.com/scailabs/authzd/internal/authz"
)

// An in-process caller (the console) serves a request through the same
// router, scopes, tenant rules, handlers and audit as the bearer routes, as a
// token it authenticated itself; the request never carries the secret.

type inProcess struct {
	token authz.Token
	via   string
}

const inProcessKey ctxKey = 100

// AsToken returns ctx under which ServeHTTP treats a request as made with t,
// without an Authorization header, and records via in the details of every
// audit row it writes. Only code in this process can set it.
func AsToken(ctx context.Context, t authz.Token, via string) context.Context {
	return context.WithValue(ctx, inProcessKey, inProcess{token: t, via: via})
}

func inProcessFrom(ctx context.Context) (inProcess, bool) {
	p, ok := ctx.Value(inProcessKey).(inProcess)
	return p, ok
}

// Authenticate verifies a bearer token's secret as the routes do.
func (s *Server) Authenticate(ctx context.Context, raw string) (authz.Token, error) {
	return s.auth.authenticate(ctx, raw)
}

// TokenRef is what a session keeps to find t again with TokenByID: a
// service token's id, or for the bootstrap token a fingerprint of the current
// AUTHZ_ADMIN_TOKEN, so that changing it ends the sessions it opened.
func (s *Server) TokenRef(t authz.Token) string {
	if t.ID == bootstrapToken.ID {
		return bootstrapToken.ID + ":" + hex.EncodeToString(s.auth.adminHash[:8])
	}
	return t.ID
}

// TokenByID reads a live token by its TokenRef: the bootstrap token while
// AUTHZ_ADMIN_TOKEN is unchanged, or a service token that is not revoked
// (else EUNAUTHORIZED).
func (s *Server) TokenByID(ctx context.Context, id string) (authz.Token, error) {
	if fp, ok := strings.CutPrefix(id, bootstrapToken.ID+":"); ok {
		want := hex.EncodeToString(s.auth.adminHash[:8])
		if !s.auth.hasAdmin || subtle.ConstantTimeCompare([]byte(fp), []byte(want)) != 1 {
			return authz.Token{}, authz.Errorf(authz.EUNAUTHORIZED, "the bootstrap token changed")
		}
		return bootstrapToken, nil
	}
	t, err := s.store.Token(ctx, id)
	if authz.ErrorCode(err) == authz.ENOTFOUND || (err == nil && t.RevokedAt != nil) {
		return authz.Token{}, authz.Errorf(authz.EUNAUTHORIZED, "the token was revoked")
	}
	return t, err
}

// withVia marks events written on behalf of an in-process caller.
func withVia(ctx context.Context, events []authz.Event) []authz.Event {
	p, ok := inProcessFrom(ctx)
	if !ok || p.via == "" {
		return events
	}
	out := make([]authz.Event, len(events))
	for i, e := range events {
		d := maps.Clone(e.Details)
		if d == nil {
			d = map[string]any{}
		}
		d["via"] = p.via
		e.Details = d
		out[i] = e
	}
	return out
}
