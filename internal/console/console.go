// Package console is authzd's admin console in the browser: pages rendered
// with html/template from embedded files, no JavaScript build. Every read and
// write goes through the /v1 handlers in process (internal/http), as the
// signed-in token, behind the same scopes, tenant rules and audit; writes are
// audited with details.via "console".
package console

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/authz"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/*
var assetFS embed.FS

// Prefix is where the console is served.
const Prefix = "/console"

// CSP is the Content-Security-Policy of every console response.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// CookieName is the session cookie.
const CookieName = "authzd_console"

// signInCookie carries the sign-in form's CSRF token before there is a session.
const signInCookie = "authzd_console_signin"

// API is what the console needs of the HTTP API (internal/http's Server):
// its router, run in process, and its token checks.
type API interface {
	http.Handler
	// Authenticate verifies a token's secret, as the bearer routes do.
	Authenticate(ctx context.Context, raw string) (authz.Token, error)
	// TokenRef is what a session keeps to find the token again (never its secret).
	TokenRef(t authz.Token) string
	// TokenByID reads a live token by its TokenRef (EUNAUTHORIZED once it is revoked).
	TokenByID(ctx context.Context, ref string) (authz.Token, error)
}

// Sessions stores console sessions (Postgres's console_sessions).
type Sessions interface {
	CreateSession(ctx context.Context, idHash []byte, tokenID, actor string, csrf []byte, expires time.Time) error
	Session(ctx context.Context, idHash []byte) (tokenID, actor string, csrf []byte, err error)
	DeleteSession(ctx context.Context, idHash []byte) error
	// HoldToken runs fn while the token cannot be revoked, or answers
	// EUNAUTHORIZED when it is revoked already.
	HoldToken(ctx context.Context, tokenID string, fn func(context.Context) error) error
}

// Chain is the audit chain the console verifies in process.
type Chain interface {
	auditchain.Source
	SigningKeys(ctx context.Context) ([]auditchain.PublicKey, error)
}

// Options configure a Console.
type Options struct {
	API      API
	Sessions Sessions
	Chain    Chain
	// SessionTTL is how long a sign-in lasts (AUTHZ_CONSOLE_SESSION_TTL).
	SessionTTL time.Duration
	// VerifyInterval is how often the audit chain is verified (AUTHZ_CONSOLE_VERIFY_INTERVAL).
	VerifyInterval time.Duration
	// SecureCookies marks cookies Secure even on plain HTTP (AUTHZ_PUBLIC_URL is https).
	SecureCookies bool
	Logger        *slog.Logger
}

// Console serves the console's pages.
type Console struct {
	o      Options
	pages  map[string]*template.Template
	router chi.Router

	mu     sync.Mutex
	status ChainStatus
	from   auditchain.Head // verified up to here
}

// New builds the console.
func New(o Options) (*Console, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	c := &Console{o: o, pages: map[string]*template.Template{}}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, err
		}
		c.pages[base] = t
	}
	c.router = c.routes()
	return c, nil
}

// Wrap serves the console under Prefix and everything else with next.
func (c *Console) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == Prefix || strings.HasPrefix(r.URL.Path, Prefix+"/") {
			c.router.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (c *Console) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(headers, c.recoverer)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusForbidden, "This request came from another site and was refused.")
	}))
	r.Use(cop.Handler)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "There is no console page at this address.")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusMethodNotAllowed, "This page does not take "+r.Method+" requests.")
	})
	r.Get(Prefix+"/assets/{name}", c.handleAsset)
	r.Get(Prefix, c.handleIndex)
	r.Post(Prefix+"/sign-in", c.handleSignIn)
	r.Group(func(r chi.Router) {
		r.Use(c.session)
		r.Post(Prefix+"/sign-out", c.handleSignOut)
		r.Get(Prefix+"/tenants/{tenant_id}", c.handleMatrix)
		r.Post(Prefix+"/tenants/{tenant_id}/roles", c.handleCreateRole)
		r.Get(Prefix+"/tenants/{tenant_id}/roles/{role_id}", c.handleRole)
		r.Post(Prefix+"/tenants/{tenant_id}/roles/{role_id}", c.handleRolePost)
		r.Get(Prefix+"/audit", c.handleAudit)
		r.Get(Prefix+"/explain", c.handleExplain)
		r.Post(Prefix+"/explain", c.handleExplain)
		r.Get(Prefix+"/tokens", c.handleTokens)
		r.Post(Prefix+"/tokens", c.handleCreateToken)
		r.Post(Prefix+"/tokens/{token_id}/revoke", c.handleRevokeToken)
	})
	return r
}

// recoverer answers a panic as an internal error, logged with its stack.
func (c *Console) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				c.internal(w, r, fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// headers sets what every console response carries, 404s and assets included.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func (c *Console) handleAsset(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	b, err := assetFS.ReadFile("assets/" + name)
	if err != nil || strings.Contains(name, "/") {
		c.fail(w, r, http.StatusNotFound, "There is no such asset.")
		return
	}
	switch {
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	_, _ = w.Write(b)
}
