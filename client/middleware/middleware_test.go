package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/scailabs/authzd/client"
	"github.com/scailabs/authzd/client/middleware"
)

// fakeChecker answers with a fixed decision or error and records the question.
type fakeChecker struct {
	decision client.Decision
	err      error

	calls int
	got   client.CheckRequest
}

func (f *fakeChecker) HasModulePermission(ctx context.Context, tenantID, userID, key string, opts ...client.CheckOption) (client.Decision, error) {
	f.calls++
	f.got = client.CheckRequest{TenantID: tenantID, UserID: userID, Permission: key}
	for _, o := range opts {
		o(&f.got)
	}
	return f.decision, f.err
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func fixed(v string) middleware.Extractor {
	return func(*http.Request) (string, error) { return v, nil }
}

func failing(msg string) middleware.Extractor {
	return func(*http.Request) (string, error) { return "", errors.New(msg) }
}

// serve runs one request through the middleware and reports whether the handler ran.
func serve(t *testing.T, mw func(http.Handler) http.Handler, req *http.Request) (*httptest.ResponseRecorder, bool) {
	t.Helper()
	called := false
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called = true
		w.WriteHeader(http.StatusNoContent)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, called
}

func errorCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return body.Error.Code
}

func TestRequireModulePermission(t *testing.T) {
	allowed := client.Decision{Allowed: true, CheckedAt: "zt", DecisionID: "d1"}
	tests := []struct {
		name       string
		checker    *fakeChecker
		opts       []middleware.Option
		wantStatus int
		wantCode   string
		wantCalls  int
	}{
		{"Allowed", &fakeChecker{decision: allowed}, nil, http.StatusNoContent, "", 1},
		{"Denied", &fakeChecker{decision: client.Decision{DecisionID: "d2"}}, nil, http.StatusForbidden, "forbidden", 1},
		{"CheckerError", &fakeChecker{err: errors.New("connection refused")}, nil, http.StatusServiceUnavailable, "unavailable", 1},
		// Even a checker that says allowed alongside an error is a no.
		{"CheckerErrorWithAllowed", &fakeChecker{decision: allowed, err: context.DeadlineExceeded}, nil, http.StatusServiceUnavailable, "unavailable", 1},
		{"TenantError", &fakeChecker{decision: allowed},
			[]middleware.Option{middleware.WithTenant(failing("no token"))}, http.StatusUnauthorized, "unauthorized", 0},
		{"UserEmpty", &fakeChecker{decision: allowed},
			[]middleware.Option{middleware.WithUser(fixed(""))}, http.StatusUnauthorized, "unauthorized", 0},
		{"ResourceError", &fakeChecker{decision: allowed},
			[]middleware.Option{middleware.WithResource("bunker", failing("bunker id is malformed"))}, http.StatusBadRequest, "invalid", 0},
		{"ResourceEmpty", &fakeChecker{decision: allowed},
			[]middleware.Option{middleware.WithResource("bunker", fixed(""))}, http.StatusBadRequest, "invalid", 0},
		{"StatusError", &fakeChecker{decision: allowed},
			[]middleware.Option{middleware.WithTenant(func(*http.Request) (string, error) {
				return "", middleware.StatusError(http.StatusNotFound, errors.New("no such tenant"))
			})}, http.StatusNotFound, "error", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]middleware.Option{
				middleware.WithTenant(fixed("t1")), middleware.WithUser(fixed("alice")), middleware.WithLogger(quiet),
			}, tt.opts...)
			mw := middleware.RequireModulePermission(tt.checker, "scaibunker:create", opts...)
			rec, called := serve(t, mw, httptest.NewRequest("POST", "/bunkers", nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if want := tt.wantStatus == http.StatusNoContent; called != want {
				t.Errorf("handler called = %v, want %v", called, want)
			}
			if tt.wantCode != "" {
				if got := errorCode(t, rec); got != tt.wantCode {
					t.Errorf("code = %q, want %q", got, tt.wantCode)
				}
			}
			if tt.checker.calls != tt.wantCalls {
				t.Errorf("checker calls = %d, want %d", tt.checker.calls, tt.wantCalls)
			}
		})
	}
}

func TestQuestion(t *testing.T) {
	f := &fakeChecker{decision: client.Decision{Allowed: true, DecisionID: "d1"}}
	mw := middleware.RequireModulePermission(f, "scaibunker:execute",
		middleware.WithTenant(middleware.Header("X-Tenant-Id")),
		middleware.WithUser(middleware.Header("X-User-Id")),
		middleware.WithResource("bunker", middleware.PathValue("id")),
		middleware.WithAction("bunker.exec"),
		middleware.WithConsistencyToken(func(r *http.Request) string { return r.Header.Get("X-Authz-Token") }),
	)
	var decision client.Decision
	r := chi.NewRouter()
	r.With(mw).Post("/bunkers/{id}/exec", func(w http.ResponseWriter, r *http.Request) {
		decision, _ = middleware.DecisionFrom(r.Context())
	})
	req := httptest.NewRequest("POST", "/bunkers/b1/exec", nil)
	req.Header.Set("X-Tenant-Id", "t1")
	req.Header.Set("X-User-Id", "sa:bot")
	req.Header.Set("X-Authz-Token", "zt9")
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)

	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, body %s", rec.Code, rec.Body)
	}
	want := client.CheckRequest{TenantID: "t1", UserID: "sa:bot", Permission: "scaibunker:execute",
		Resource: &client.Resource{Type: "bunker", ID: "b1"}, Action: "bunker.exec", ConsistencyToken: "zt9"}
	if got := f.got; got.TenantID != want.TenantID || got.UserID != want.UserID || got.Permission != want.Permission ||
		got.Resource == nil || *got.Resource != *want.Resource || got.Action != want.Action || got.ConsistencyToken != want.ConsistencyToken {
		t.Errorf("question = %+v (resource %+v), want %+v", got, got.Resource, want)
	}
	if decision.DecisionID != "d1" {
		t.Errorf("DecisionFrom = %+v, want decision d1", decision)
	}
}

// TestGate gates a chi route group with Use inside r.Route, where the path
// parameter of the group is already set.
func TestGate(t *testing.T) {
	f := &fakeChecker{decision: client.Decision{Allowed: true}}
	gate := middleware.NewGate(f, middleware.WithTenant(fixed("t1")), middleware.WithUser(fixed("alice")), middleware.WithLogger(quiet))
	r := chi.NewRouter()
	r.With(gate.Require("scaibunker:create")).Post("/bunkers", func(w http.ResponseWriter, r *http.Request) {})
	r.Route("/bunkers/{id}", func(r chi.Router) {
		r.Use(gate.Require("scaibunker:files", middleware.WithResource("bunker", middleware.PathValue("id"))))
		r.Get("/files", func(w http.ResponseWriter, r *http.Request) {})
	})

	for _, tc := range []struct {
		method, path, wantKey, wantResource string
	}{
		{"POST", "/bunkers", "scaibunker:create", ""},
		{"GET", "/bunkers/b7/files", "scaibunker:files", "b7"},
	} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s %s: status = %d, body %s", tc.method, tc.path, rec.Code, rec.Body)
		}
		if f.got.Permission != tc.wantKey {
			t.Errorf("%s %s: key = %q, want %q", tc.method, tc.path, f.got.Permission, tc.wantKey)
		}
		var gotResource string
		if f.got.Resource != nil {
			gotResource = f.got.Resource.ID
		}
		if gotResource != tc.wantResource {
			t.Errorf("%s %s: resource = %q, want %q", tc.method, tc.path, gotResource, tc.wantResource)
		}
	}
}

func TestErrorHandler(t *testing.T) {
	var gotStatus int
	var gotErr error
	mw := middleware.RequireModulePermission(&fakeChecker{}, "scaibunker:create",
		middleware.WithTenant(fixed("t1")), middleware.WithUser(fixed("alice")), middleware.WithLogger(quiet),
		middleware.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, status int, err error) {
			gotStatus, gotErr = status, err
			w.WriteHeader(http.StatusTeapot)
		}))
	rec, called := serve(t, mw, httptest.NewRequest("GET", "/", nil))
	if called || rec.Code != http.StatusTeapot {
		t.Errorf("status = %d, handler called = %v; want the error handler's 418 and no call", rec.Code, called)
	}
	if gotStatus != http.StatusForbidden || !errors.Is(gotErr, middleware.ErrDenied) {
		t.Errorf("error handler got %d, %v; want 403, ErrDenied", gotStatus, gotErr)
	}
}

// TestRealClient puts *client.Client behind the middleware and an authzd that cannot
// answer: the request is refused with 503, never let through.
func TestRealClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"code":"unavailable","message":"spicedb is down"}}`)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, "tok", client.WithRetry(2, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	mw := middleware.RequireModulePermission(c, "scaibunker:create",
		middleware.WithTenant(fixed("t1")), middleware.WithUser(fixed("alice")), middleware.WithLogger(quiet))
	rec, called := serve(t, mw, httptest.NewRequest("POST", "/bunkers", nil))
	if called || rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status = %d, handler called = %v; want 503 and no call", rec.Code, called)
	}
	if strings.Contains(rec.Body.String(), "spicedb") {
		t.Errorf("body %s shows authzd's message", rec.Body)
	}
}

func TestPanics(t *testing.T) {
	tenant, user := middleware.WithTenant(fixed("t1")), middleware.WithUser(fixed("alice"))
	for name, f := range map[string]func(){
		"BadKey":    func() { middleware.RequireModulePermission(&fakeChecker{}, "scaibunker.create", tenant, user) },
		"NoTenant":  func() { middleware.RequireModulePermission(&fakeChecker{}, "scaibunker:create", user) },
		"NoUser":    func() { middleware.RequireModulePermission(&fakeChecker{}, "scaibunker:create", tenant) },
		"NoChecker": func() { middleware.RequireModulePermission(nil, "scaibunker:create", tenant, user) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}
