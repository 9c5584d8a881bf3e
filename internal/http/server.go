// Package http is authzd's HTTP adapter: the chi router of contract v1, its
// authentication, and the mapping of domain errors to JSON responses.
package http

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/latency"
	"github.com/scailabs/authzd/internal/metrics"
)

// Audit is the durable audit log.
type Audit interface {
	Record(ctx context.Context, events ...authz.Event) error
}

// KeyInfo describes one module-permission key.
type KeyInfo struct {
	Key         authz.Key
	Description string
	// Roles are the built-in roles holding the key without a custom role.
	Roles []string
}

// Server serves contract v1.
type Server struct {
	checker     Checker
	explainer   Explainer
	searcher    Searcher
	provisioner Provisioner
	lister      Lister
	model       Model
	readiness   Readiness
	audit       Audit
	store       storeRoles
	chain       Chain
	// signingKeyID is the key this instance signs checkpoints with.
	signingKeyID string
	keys         []KeyInfo
	known        map[string]authz.Key
	keyRoles     map[string][]string
	publicURL    string
	auth         *authenticator
	logger       *slog.Logger
	metrics      *metrics.Metrics
	openapi      []byte
	noAudit      bool
	maxBody      int64
	router       chi.Router
	readyCheck   time.Duration
	transfer     Transfer
	imports      ImportOptions
	shadow       ShadowReporter
	importStatus ImportStatuser
	whatif       *WhatIf
	latency      *latency.Recorder
}

// What a zero Options field means. authzd's configuration (cmd/authzd/app)
// has the same defaults, which a test there keeps equal to these.
const (
	DefaultMaxBodyBytes  = 1 << 20
	DefaultTokenCacheTTL = 10 * time.Second
)

// Options configure a Server.
type Options struct {
	// The graph's roles: authzd passes its one SpiceDB adapter for each; a
	// test passes small fakes of the roles it exercises.
	Checker     Checker
	Explainer   Explainer
	Searcher    Searcher
	Provisioner Provisioner
	Lister      Lister
	Model       Model
	Readiness   Readiness

	// Postgres's roles besides the audit writer: authzd passes its one
	// Postgres adapter for each; a test passes fakes of those it exercises.
	TokenVerifier TokenVerifier
	Tokens        TokenStore
	AuditReader   AuditReader
	RoleNamer     RoleNamer
	Database      Pinger

	Audit Audit
	// Chain serves the audit hash chain, its checkpoints and keys.
	Chain Chain
	// SigningKeyID marks this instance's key in GET /v1/audit/keys.
	SigningKeyID string
	Keys         []KeyInfo
	AdminToken   string
	Logger       *slog.Logger
	Metrics      *metrics.Metrics
	OpenAPI      []byte
	// DisableAudit skips audit rows. It exists only so the benchmark can show
	// what the audit costs; never set it in production.
	DisableAudit bool
	// MaxBodyBytes caps request bodies (default 1 MiB).
	MaxBodyBytes int64
	// PublicURL is the AuthZEN PDP identifier (the https base URL callers
	// use); empty derives it from each metadata request.
	PublicURL string
	// TokenCacheTTL is how long a verified service token is trusted without
	// asking Postgres again (default 10s). Revocation through this instance
	// takes effect at once.
	TokenCacheTTL time.Duration
	// Transfer imports and exports record documents; Import configures it.
	Transfer Transfer
	Import   ImportOptions
	// Shadow summarises shadowed checks (GET /v1/shadow/report).
	Shadow ShadowReporter
	// ImportStatus follows an import (GET /v1/import/status).
	ImportStatus ImportStatuser
	// WhatIf serves POST /v1/whatif; nil answers it 503.
	WhatIf *WhatIf
	// Latency, when set, keeps a trace of each decision's stages (decode,
	// decide, audit queue, statement, commit, answer) for the benchmark.
	Latency *latency.Recorder
}

// NewServer builds the router.
func NewServer(o Options) *Server {
	s := &Server{
		checker: o.Checker, explainer: o.Explainer, searcher: o.Searcher, provisioner: o.Provisioner, lister: o.Lister,
		model: o.Model, readiness: o.Readiness, audit: o.Audit, chain: o.Chain, signingKeyID: o.SigningKeyID, keys: o.Keys, logger: o.Logger, metrics: o.Metrics,
		openapi: o.OpenAPI, noAudit: o.DisableAudit, whatif: o.WhatIf, maxBody: o.MaxBodyBytes, readyCheck: 2 * time.Second,
		known: map[string]authz.Key{}, keyRoles: map[string][]string{}, publicURL: o.PublicURL, latency: o.Latency,
		store: storeRoles{TokenStore: o.Tokens, AuditReader: o.AuditReader, RoleNamer: o.RoleNamer, Pinger: o.Database},
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	for _, k := range o.Keys {
		s.known[k.Key.String()] = k.Key
		s.keyRoles[k.Key.String()] = k.Roles
	}
	s.auth = newAuthenticator(o.AdminToken, o.TokenVerifier, o.TokenCacheTTL)
	s.transfer, s.imports, s.shadow, s.importStatus = o.Transfer, o.Import.withDefaults(), o.Shadow, o.ImportStatus
	s.router = s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(requestID, s.instrument, s.recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.Error(w, r, authz.Errorf(authz.ENOTFOUND, "no route %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.Error(w, r, &authz.Error{Code: codeMethodNotAllowed, Message: "method " + r.Method + " is not allowed on " + r.URL.Path})
	})

	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	if s.metrics != nil {
		r.Method(http.MethodGet, "/metrics", s.metrics.Handler())
	}
	r.Get("/v1/openapi.yaml", s.handleOpenAPI)
	r.Get("/.well-known/authzen-configuration", s.handleAuthZENConfiguration)

	// AuthZEN Authorization API 1.0: the same tokens and scope as checks.
	r.Route("/access/v1", func(r chi.Router) {
		r.Use(s.limitBody)
		// A group, so that require runs once the route is matched and knows its tenant rule.
		r.Group(func(r chi.Router) {
			r.Use(s.require(authz.ScopeCheck), s.requireJSON)
			r.Post("/evaluation", s.handleAZEvaluation)
			r.Post("/evaluations", s.handleAZEvaluations)
			r.Post("/search/subject", s.handleAZSearchSubject)
			r.Post("/search/resource", s.handleAZSearchResource)
			r.Post("/search/action", s.handleAZSearchAction)
		})
	})

	// Imports and exports carry documents far over AUTHZ_MAX_BODY_BYTES and
	// run past the server's deadlines, so they sit outside /v1's body limit.
	r.With(s.require(authz.ScopeProvision), s.actor).Post("/v1/import", s.handleImport)
	r.With(s.require(authz.ScopeProvision), s.actor).Get("/v1/export", s.handleExport)
	r.With(s.limitBody, s.require(authz.ScopeProvision)).Get("/v1/import/status", s.handleImportStatus)
	r.With(s.limitBody, s.require(authz.ScopeAuditRead)).Get("/v1/shadow/report", s.handleShadowReport)

	// One group a scope, each route written out: the table reads as the map of
	// every route to the scope it needs, which a helper building the groups
	// would hide, so the groups look alike on purpose.
	r.Route("/v1", func(r chi.Router) {
		r.Use(s.limitBody)
		r.Group(func(r chi.Router) {
			r.Use(s.require(authz.ScopeCheck))
			r.Post("/permissions/check", s.handleCheck)
			r.Post("/permissions/check_bulk", s.handleCheckBulk)
			r.Post("/permissions/explain", s.handleExplain)
			r.Get("/permissions/keys", s.handleKeys)
			r.Get("/tenants/{tenant_id}/users/{user_id}/permissions", s.handleEffective)
			r.Get("/tenants", s.handleListTenants)
			r.Get("/tenants/{tenant_id}/roles", s.handleListRoles)
			r.Get("/tenants/{tenant_id}/members", s.handleListMembers)
		})
		r.Group(func(r chi.Router) {
			r.Use(s.require(authz.ScopeProvision), s.actor)
			r.Put("/partners/{partner_id}", s.handlePutPartner)
			r.Delete("/partners/{partner_id}", s.handleDeletePartner)
			r.Put("/partners/{partner_id}/admins/{user_id}", s.handlePartnerAdmin(true))
			r.Delete("/partners/{partner_id}/admins/{user_id}", s.handlePartnerAdmin(false))
			r.Put("/platform/super_admins/{user_id}", s.handleSuperAdmin(true))
			r.Delete("/platform/super_admins/{user_id}", s.handleSuperAdmin(false))
			r.Put("/tenants/{tenant_id}", s.handlePutTenant)
			r.Delete("/tenants/{tenant_id}", s.handleDeleteTenant)
			r.Put("/tenants/{tenant_id}/roles/{role_id}", s.handlePutRole)
			r.Get("/tenants/{tenant_id}/roles/{role_id}", s.handleGetRole)
			r.Delete("/tenants/{tenant_id}/roles/{role_id}", s.handleDeleteRole)
			r.Put("/tenants/{tenant_id}/roles/{role_id}/members/{user_id}", s.handleMember(true))
			r.Delete("/tenants/{tenant_id}/roles/{role_id}/members/{user_id}", s.handleMember(false))
			r.Put("/tenants/{tenant_id}/resources/{type}/{resource_id}", s.handlePutResource)
			r.Delete("/tenants/{tenant_id}/resources/{type}/{resource_id}", s.handleDeleteResource)
		})
		r.Group(func(r chi.Router) {
			r.Use(s.require(authz.ScopeCheck, authz.ScopeAuditRead), s.actor)
			r.Post("/whatif", s.handleWhatIf)
		})
		r.Group(func(r chi.Router) {
			r.Use(s.require(authz.ScopeAuditRead))
			r.Get("/audit/events", s.handleAuditEvents)
			r.Get("/audit/chain", s.handleAuditChain)
			r.Get("/audit/checkpoints", s.handleAuditCheckpoints)
			r.Get("/audit/keys", s.handleAuditKeys)
			r.Get("/audit/rotations", s.handleAuditRotations)
		})
		r.Group(func(r chi.Router) {
			r.Use(s.require(authz.ScopeAdmin), s.actor)
			r.Post("/tokens", s.handleCreateToken)
			r.Get("/tokens", s.handleListTokens)
			r.Delete("/tokens/{token_id}", s.handleRevokeToken)
		})
	})
	return r
}

// Routes lists every route as "METHOD /pattern", for the contract test.
func (s *Server) Routes() []string {
	var out []string
	_ = chi.Walk(s.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+route)
		return nil
	})
	return out
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.readyCheck)
	defer cancel()
	checks := map[string]string{"spicedb": "ok", "postgres": "ok"}
	status := http.StatusOK
	if err := s.readiness.Ready(ctx); err != nil {
		checks["spicedb"], status = authz.ErrorMessage(err), http.StatusServiceUnavailable
		s.logger.WarnContext(ctx, "readiness: spicedb", "err", err, "request_id", RequestID(r.Context()))
	}
	if err := s.store.Ping(ctx); err != nil {
		checks["postgres"], status = authz.ErrorMessage(err), http.StatusServiceUnavailable
		s.logger.WarnContext(ctx, "readiness: postgres", "err", err, "request_id", RequestID(r.Context()))
	}
	overall := "ok"
	if status != http.StatusOK {
		overall = "unavailable"
	}
	writeJSON(w, status, map[string]any{"status": overall, "checks": checks})
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(s.openapi)
}
