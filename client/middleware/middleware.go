// Package middleware gates net/http handlers (chi routes included) on an authzd
// module-permission check. A module sets up a Gate once, with how it finds the caller's
// tenant and user, and then gates each route with one line:
//
//	gate := middleware.NewGate(authzClient,
//		middleware.WithTenant(tenantFromToken),
//		middleware.WithUser(userFromToken))
//
//	r.With(gate.Require("scaibunker:create")).Post("/bunkers", h.create)
//	r.With(gate.Require("scaibunker:execute",
//		middleware.WithResource("bunker", middleware.PathValue("id")),
//	)).Post("/bunkers/{id}/exec", h.exec)
//
// RequireModulePermission does the same without a Gate.
//
// The handler runs only when authzd answered allowed. Otherwise the middleware answers:
//
//	401 unauthorized  the tenant or user extractor failed or returned ""
//	400 invalid       the resource extractor failed or returned ""
//	403 forbidden     authzd answered denied
//	503 unavailable   authzd could not answer (an error, a timeout): never a yes
//
// An extractor can pick another status by returning StatusError(status, err).
// Bodies are {"error": {"code", "message"}} like authzd's own, unless WithErrorHandler
// says otherwise.
package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/scailabs/authzd/client"
)

// Checker asks authzd one question; *client.Client satisfies it.
type Checker interface {
	HasModulePermission(ctx context.Context, tenantID, userID, key string, opts ...client.CheckOption) (client.Decision, error)
}

var _ Checker = (*client.Client)(nil)

// Extractor reads one value (a tenant id, a user id, a resource id) from a request.
// An error or "" stops the request.
type Extractor func(*http.Request) (string, error)

// ErrDenied is the error WithErrorHandler receives when authzd answered denied.
var ErrDenied = errors.New("permission denied")

// Option configures RequireModulePermission.
type Option func(*config)

type config struct {
	tenant, user Extractor
	resourceType string
	resource     Extractor
	action       func(*http.Request) string
	consistency  func(*http.Request) string
	onError      func(w http.ResponseWriter, r *http.Request, status int, err error)
	logger       *slog.Logger
}

// WithTenant sets how the tenant id is found, typically from the caller's authenticated
// identity. Required.
func WithTenant(f Extractor) Option { return func(c *config) { c.tenant = f } }

// WithUser sets how the user id ("alice" or "sa:ci-bot") is found, typically from the
// caller's authenticated identity. Required.
func WithUser(f Extractor) Option { return func(c *config) { c.user = f } }

// WithResource checks the key on one resource of the tenant (of resourceType, such as
// "bunker") whose id f reads from the request, instead of on the tenant.
func WithResource(resourceType string, f Extractor) Option {
	return func(c *config) { c.resourceType, c.resource = resourceType, f }
}

// WithAction records action (e.g. "bunker.exec") in the decision's audit event.
func WithAction(action string) Option {
	return func(c *config) { c.action = func(*http.Request) string { return action } }
}

// WithActionFunc is WithAction with an action computed from the request.
func WithActionFunc(f func(*http.Request) string) Option { return func(c *config) { c.action = f } }

// WithConsistencyToken reads a zed token from the request (say, a header a client
// echoes after creating a resource); when it returns one, the check is at least as
// fresh as the write that produced it.
func WithConsistencyToken(f func(*http.Request) string) Option {
	return func(c *config) { c.consistency = f }
}

// WithErrorHandler replaces the JSON error answers. h must write the response; the
// wrapped handler is not called either way. err is ErrDenied for 403, the checker's
// error for 503 and the extractor's for 400 and 401.
func WithErrorHandler(h func(w http.ResponseWriter, r *http.Request, status int, err error)) Option {
	return func(c *config) { c.onError = h }
}

// WithLogger logs checks that authzd could not answer (at Warn) and denials (at Debug).
// The default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// RequireModulePermission returns middleware that calls the next handler only when c
// answers that the request's user holds key in the request's tenant (and on its
// resource, with WithResource).
//
// It panics when key is not a valid key or WithTenant or WithUser is missing: those are
// mistakes to catch when routes are built, not on a request.
func RequireModulePermission(c Checker, key string, opts ...Option) func(http.Handler) http.Handler {
	if err := client.ValidateKey(key); err != nil {
		panic(fmt.Sprintf("middleware.RequireModulePermission: %v", err))
	}
	cfg := config{logger: slog.Default(), onError: writeError}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.tenant == nil || cfg.user == nil {
		panic("middleware.RequireModulePermission(" + key + "): WithTenant and WithUser are required")
	}
	if c == nil {
		panic("middleware.RequireModulePermission(" + key + "): nil Checker")
	}

	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tenantID, err := extract(r, cfg.tenant, "tenant", http.StatusUnauthorized)
			if err != nil {
				cfg.fail(w, r, err)
				return
			}
			userID, err := extract(r, cfg.user, "user", http.StatusUnauthorized)
			if err != nil {
				cfg.fail(w, r, err)
				return
			}
			var checkOpts []client.CheckOption
			if cfg.resource != nil {
				id, err := extract(r, cfg.resource, cfg.resourceType+" id", http.StatusBadRequest)
				if err != nil {
					cfg.fail(w, r, err)
					return
				}
				checkOpts = append(checkOpts, client.WithResource(cfg.resourceType, id))
			}
			if cfg.action != nil {
				if a := cfg.action(r); a != "" {
					checkOpts = append(checkOpts, client.WithAction(a))
				}
			}
			if cfg.consistency != nil {
				if t := cfg.consistency(r); t != "" {
					checkOpts = append(checkOpts, client.WithConsistencyToken(t))
				}
			}

			d, err := c.HasModulePermission(r.Context(), tenantID, userID, key, checkOpts...)
			switch {
			case err != nil:
				cfg.logger.WarnContext(r.Context(), "authzd could not answer; denying",
					"key", key, "tenant_id", tenantID, "user_id", userID, "err", err)
				cfg.onError(w, r, http.StatusServiceUnavailable, err)
			case !d.Allowed:
				cfg.logger.DebugContext(r.Context(), "permission denied",
					"key", key, "tenant_id", tenantID, "user_id", userID, "decision_id", d.DecisionID)
				cfg.onError(w, r, http.StatusForbidden, ErrDenied)
			default:
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), decisionKey{}, d)))
			}
		})
	}
}

// fail answers an extractor error with its status.
func (c *config) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadRequest
	var se *statusError
	if errors.As(err, &se) {
		status = se.status
	}
	c.onError(w, r, status, err)
}

// extract runs f and gives its failure the status def unless it chose one.
func extract(r *http.Request, f Extractor, what string, def int) (string, error) {
	v, err := f(r)
	if err == nil && v == "" {
		err = fmt.Errorf("no %s in the request", what)
	}
	if err != nil {
		var se *statusError
		if !errors.As(err, &se) {
			err = &statusError{status: def, err: err}
		}
		return "", err
	}
	return v, nil
}

type decisionKey struct{}

// DecisionFrom returns the decision that let the request through, for handlers that log
// its DecisionID.
func DecisionFrom(ctx context.Context) (client.Decision, bool) {
	d, ok := ctx.Value(decisionKey{}).(client.Decision)
	return d, ok
}

// statusError carries the status an extractor chose.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// StatusError makes an extractor's failure answer status instead of the default
// (401 for tenant and user, 400 for the resource).
func StatusError(status int, err error) error { return &statusError{status: status, err: err} }

// PathValue reads a path parameter: "{id}" of a chi route or of an http.ServeMux
// pattern. With chi, register the middleware on the route (r.With) or in a r.Route
// group, not with Use on the router, so that the parameter is set when it runs.
func PathValue(name string) Extractor {
	return func(r *http.Request) (string, error) { return r.PathValue(name), nil }
}

// Header reads a request header.
func Header(name string) Extractor {
	return func(r *http.Request) (string, error) { return r.Header.Get(name), nil }
}

// codes are the error codes of the default answers.
var codes = map[int]string{
	http.StatusBadRequest:         "invalid",
	http.StatusUnauthorized:       "unauthorized",
	http.StatusForbidden:          "forbidden",
	http.StatusServiceUnavailable: "unavailable",
}

// writeError is the default error answer. The message of a 400 is the extractor's, which
// should be written for the caller; 401s do not show theirs, and 503s never show authzd's.
func writeError(w http.ResponseWriter, r *http.Request, status int, err error) {
	code, ok := codes[status]
	if !ok {
		code = "error"
	}
	var msg string
	switch status {
	case http.StatusBadRequest:
		msg = err.Error()
	case http.StatusUnauthorized:
		msg = "authentication required"
	case http.StatusForbidden:
		msg = "permission denied"
	case http.StatusServiceUnavailable:
		msg = "the authorization service cannot answer; try again later"
	default:
		msg = http.StatusText(status)
	}
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	_ = json.NewEncoder(w).Encode(body)
}

// Gate holds a Checker and the options every gated route shares, typically WithTenant,
// WithUser and WithLogger.
type Gate struct {
	c    Checker
	opts []Option
}

// NewGate returns a Gate that checks with c.
func NewGate(c Checker, opts ...Option) *Gate { return &Gate{c: c, opts: opts} }

// Require is RequireModulePermission with the Gate's options followed by opts.
func (g *Gate) Require(key string, opts ...Option) func(http.Handler) http.Handler {
	all := append(append([]Option(nil), g.opts...), opts...)
	return RequireModulePermission(g.c, key, all...)
}
