package http

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/latency"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	tokenKey
	actorKey
)

// actorHeader names the user on whose behalf a write is made, for its audit row.
const actorHeader = "X-Actor-User-Id"

// actor validates X-Actor-User-Id once for every route that writes (it is
// optional): a malformed value is 400 before anything changes, and handlers
// read the parsed value with actorFrom.
func (s *Server) actor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := r.Header.Get(actorHeader)
		if raw == "" {
			next.ServeHTTP(w, r)
			return
		}
		subj, err := authz.ParseSubject(actorHeader, raw)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actorKey, subj.String())))
	})
}

// actorFrom returns the validated X-Actor-User-Id, or "".
func actorFrom(ctx context.Context) string {
	a, _ := ctx.Value(actorKey).(string)
	return a
}

// RequestID returns the request id of ctx.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func tokenFrom(ctx context.Context) authz.Token {
	t, _ := ctx.Value(tokenKey).(authz.Token)
	return t
}

// maxRequestIDLen bounds a caller's X-Request-Id kept in logs and audit rows.
const maxRequestIDLen = 1024

// requestID takes the caller's X-Request-Id, else makes one, and echoes it on
// the response. AuthZEN wants the caller's value back unchanged (it is "an
// arbitrary string"), so only an oversized or control-character id is replaced.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if len(id) == 0 || len(id) > maxRequestIDLen || strings.ContainsFunc(id, unicode.IsControl) {
			id = uuid.NewString()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// recoverer turns a panic into a 500 that carries the request id and a
// generic message, and logs the panic with its stack under the same id. It
// sits inside instrument, so the 500 is counted and logged like any answer.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p) // net/http's own way to abort a response: let it through
			}
			s.logger.ErrorContext(r.Context(), "panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()),
				"request_id", RequestID(r.Context()), "method", r.Method, "path", r.URL.Path)
			writeError(w, r, authz.Errorf(authz.EINTERNAL, "panic")) // callers see "internal error"
		}()
		next.ServeHTTP(w, r)
	})
}

// instrument logs each request and records its latency by route pattern.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		trace := s.latency.Start()
		if trace != nil {
			r = r.WithContext(latency.With(r.Context(), trace))
		}
		next.ServeHTTP(ww, r)
		trace.Mark(latency.Written)
		s.latency.Finish(trace)
		d := time.Since(start)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		if s.metrics != nil {
			s.metrics.HTTP(route, r.Method, ww.Status(), d)
		}
		s.logger.DebugContext(r.Context(), "request", "method", r.Method, "route", route, "status", ww.Status(),
			"duration_ms", float64(d.Microseconds())/1000, "request_id", RequestID(r.Context()))
	})
}

func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		next.ServeHTTP(w, r)
	})
}

// require authenticates the bearer token, demands every one of scopes, and
// applies the route's tenant rule (guardTenant). It runs once the route is
// matched (it is a group's middleware), so the path's parameters are known.
func (s *Server) require(scopes ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t, err := s.bearer(r)
			if err != nil {
				s.Error(w, r, err)
				return
			}
			if err := lacking(t, scopes); err != nil {
				s.Error(w, r, err)
				return
			}
			if err := guardTenant(r, t); err != nil {
				s.Error(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey, t)))
		})
	}
}

// bearer is the request's token: the one an in-process caller (AsToken)
// authenticated, else the Authorization header's.
func (s *Server) bearer(r *http.Request) (authz.Token, error) {
	if p, ok := inProcessFrom(r.Context()); ok {
		return p.token, nil
	}
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return authz.Token{}, authz.Errorf(authz.EUNAUTHORIZED, "missing bearer token (Authorization: Bearer <token>)")
	}
	return s.auth.authenticate(r.Context(), raw)
}

// authenticator verifies bearer tokens: the bootstrap token from the
// environment, and service tokens from Postgres behind a short cache so that
// the check path does not pay a database round trip per request.
type authenticator struct {
	adminHash [32]byte
	hasAdmin  bool
	verifier  TokenVerifier
	ttl       time.Duration

	mu    sync.Mutex
	cache map[[32]byte]cachedToken
}

type cachedToken struct {
	token   authz.Token
	expires time.Time
}

// bootstrapToken is the identity of AUTHZ_ADMIN_TOKEN in audit rows.
var bootstrapToken = authz.Token{ID: "bootstrap", Name: "bootstrap", Scopes: authz.Scopes}

func newAuthenticator(admin string, verifier TokenVerifier, ttl time.Duration) *authenticator {
	if ttl <= 0 {
		ttl = DefaultTokenCacheTTL
	}
	a := &authenticator{verifier: verifier, ttl: ttl, cache: map[[32]byte]cachedToken{}}
	if admin != "" {
		a.adminHash, a.hasAdmin = sha256.Sum256([]byte(admin)), true
	}
	return a
}

func (a *authenticator) authenticate(ctx context.Context, raw string) (authz.Token, error) {
	h := sha256.Sum256([]byte(raw))
	if a.hasAdmin && subtle.ConstantTimeCompare(h[:], a.adminHash[:]) == 1 {
		return bootstrapToken, nil
	}
	now := time.Now()
	a.mu.Lock()
	c, ok := a.cache[h]
	a.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.token, nil
	}
	t, err := a.verifier.Authenticate(ctx, raw)
	if err != nil {
		return authz.Token{}, err
	}
	a.mu.Lock()
	if len(a.cache) > 10000 {
		clear(a.cache)
	}
	a.cache[h] = cachedToken{token: t, expires: now.Add(a.ttl)}
	a.mu.Unlock()
	return t, nil
}

// forget drops cached entries of a revoked token.
func (a *authenticator) forget(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for h, c := range a.cache {
		if c.token.ID == id {
			delete(a.cache, h)
		}
	}
}

// clientName identifies the calling token in audit rows, never its secret.
func clientName(t authz.Token) string {
	if t.ID == bootstrapToken.ID {
		return "bootstrap"
	}
	return "token:" + t.ID + ":" + t.Name
}

// lacking is the 403 naming each of scopes the token lacks, or nil.
func lacking(t authz.Token, scopes []string) error {
	var missing []string
	for _, sc := range scopes {
		if !t.Has(sc) {
			missing = append(missing, strconv.Quote(sc))
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return authz.Errorf(authz.EFORBIDDEN, "token lacks the %s scope", missing[0])
	}
	return authz.Errorf(authz.EFORBIDDEN, "token lacks the %s and %s scopes", strings.Join(missing[:len(missing)-1], ", "), missing[len(missing)-1])
}
