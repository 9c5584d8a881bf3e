package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/scailabs/authzd/client"
	"github.com/scailabs/authzd/client/middleware"
)

// Authz is what the service needs of authzd: checks for the middleware, and
// registering the bunkers it creates so that checks on them know their owner.
type Authz interface {
	middleware.Checker
	PutResource(ctx context.Context, tenantID, resourceType, resourceID, ownerID string) (string, error)
}

var _ Authz = (*client.Client)(nil)

// consistencyHeader carries the zed token of a bunker's registration back to the
// caller, who echoes it on the next request so that the check sees the new bunker.
const consistencyHeader = "X-Authz-Token"

// Bunker is a sandbox. The service keeps them in memory; a real one runs them.
type Bunker struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id"`
	Owner     string    `json:"owner"`
	CreatedAt time.Time `json:"created_at"`
}

// Server is the HTTP API of the service.
type Server struct {
	authz  Authz
	logger *slog.Logger
	router chi.Router

	mu      sync.Mutex
	bunkers map[string]Bunker // by tenant_id + "/" + id
}

// NewServer wires the routes. Each gated route names its key in one line.
func NewServer(az Authz, logger *slog.Logger) *Server {
	s := &Server{authz: az, logger: logger, bunkers: map[string]Bunker{}}

	gate := middleware.NewGate(az,
		middleware.WithTenant(func(r *http.Request) (string, error) { return identityFrom(r.Context()).TenantID, nil }),
		middleware.WithUser(func(r *http.Request) (string, error) { return identityFrom(r.Context()).UserID, nil }),
		middleware.WithConsistencyToken(func(r *http.Request) string { return r.Header.Get(consistencyHeader) }),
		middleware.WithLogger(logger),
	)
	bunker := middleware.WithResource(client.ResourceBunker, middleware.PathValue("id"))

	r := chi.NewRouter()
	r.Use(chimw.RequestID, chimw.Recoverer, authenticate)
	r.With(gate.Require("scaibunker:create", middleware.WithAction("bunker.create"))).Post("/bunkers", s.handleCreate)
	r.With(gate.Require("scaibunker:create", bunker, middleware.WithAction("bunker.read"))).Get("/bunkers/{id}", s.handleGet)
	r.With(gate.Require("scaibunker:execute", bunker, middleware.WithAction("bunker.exec"))).Post("/bunkers/{id}/exec", s.handleExec)
	s.router = r
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// handleCreate makes a bunker and registers it with authzd, owned by the caller.
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	id := identityFrom(r.Context())
	b := Bunker{ID: "b-" + rand.Text()[:10], TenantID: id.TenantID, Owner: id.UserID, CreatedAt: time.Now().UTC()}
	token, err := s.authz.PutResource(r.Context(), b.TenantID, client.ResourceBunker, b.ID, b.Owner)
	if err != nil {
		// Without its registration nobody could use the bunker; do not keep it.
		s.logger.WarnContext(r.Context(), "register bunker", "bunker", b.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the bunker could not be registered; try again")
		return
	}
	s.mu.Lock()
	s.bunkers[b.TenantID+"/"+b.ID] = b
	s.mu.Unlock()
	w.Header().Set(consistencyHeader, token)
	writeJSON(w, http.StatusCreated, b)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	b, ok := s.bunker(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// handleExec pretends to run a command in the bunker.
func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	b, ok := s.bunker(w, r)
	if !ok {
		return
	}
	var body struct {
		Command []string `json:"command"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Command) == 0 {
		writeError(w, http.StatusBadRequest, `body must be {"command": ["echo", "hi"]}`)
		return
	}
	d, _ := middleware.DecisionFrom(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{
		"bunker_id": b.ID, "command": body.Command, "exit_code": 0, "decision_id": d.DecisionID,
	})
}

// bunker finds the caller's bunker named by the path, or answers 404.
func (s *Server) bunker(w http.ResponseWriter, r *http.Request) (Bunker, bool) {
	s.mu.Lock()
	b, ok := s.bunkers[identityFrom(r.Context()).TenantID+"/"+chi.URLParam(r, "id")]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "no such bunker")
	}
	return b, ok
}

// Identity is the authenticated caller.
type Identity struct{ TenantID, UserID string }

type identityKey struct{}

// authenticate stands in for real authentication: it trusts the X-Tenant-Id and
// X-User-Id headers. A real module takes both from the caller's verified token.
func authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := Identity{TenantID: r.Header.Get("X-Tenant-Id"), UserID: r.Header.Get("X-User-Id")}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

func identityFrom(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey{}).(Identity)
	return id
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"message": msg}})
}
