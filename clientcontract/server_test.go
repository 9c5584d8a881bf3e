package clientcontract_test

// These tests run package client against a real authzd: the app's own constructor
// with embedded SpiceDB (memory datastore) and a fresh Postgres database per test.
// They skip when no Postgres answers (see internal/pgtest).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/scailabs/authzd/client"
	"github.com/scailabs/authzd/client/middleware"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

// MustNew is client.New that fails the test on error.
func MustNew(tb testing.TB, url, token string, opts ...client.Option) *client.Client {
	tb.Helper()
	c, err := client.New(url, token, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Must returns the zed token of a write, failing the test on error.
func Must(tb testing.TB) func(string, error) string {
	return func(zt string, err error) string {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		if zt == "" {
			tb.Fatal("write returned no zed token")
		}
		return zt
	}
}

func TestIntegration(t *testing.T) {
	a := apptest.MustStart(t, "memory")
	url, admin := a.URL, a.AdminToken
	ctx := context.Background()
	c := MustNew(t, url, admin, client.WithActor("ops-anna"))
	must := Must(t)

	// A tenant with a custom role; ids with '|', '=' and '+' check the path escaping.
	must(c.PutPartner(ctx, "acme"))
	must(c.PutTenant(ctx, "t|1", "acme"))
	must(c.PutRole(ctx, client.Role{TenantID: "t|1", RoleID: "bot=ops", Name: "Bot operators",
		ModulePermissions: []string{"scaibunker:create", "scaibunker:execute"}}))
	must(c.AddRoleMember(ctx, "t|1", "bot=ops", "sa:ci+bot"))
	must(c.AddRoleMember(ctx, "t|1", client.RoleTenantViewer, "vic"))
	zt := must(c.PutResource(ctx, "t|1", client.ResourceBunker, "b1", "sa:ci+bot"))

	t.Run("Checks", func(t *testing.T) {
		tests := []struct {
			name, user, key string
			opts            []client.CheckOption
			want            bool
		}{
			{"RoleGrantsKey", "sa:ci+bot", "scaibunker:create", nil, true},
			{"RoleLacksKey", "sa:ci+bot", "scaibunker:root", nil, false},
			{"Stranger", "mallory", "scaibunker:create", nil, false},
			{"OwnerOnResource", "sa:ci+bot", "scaibunker:execute", []client.CheckOption{client.WithResource("bunker", "b1"), client.WithAction("bunker.exec")}, true},
			{"NonOwnerOnResource", "vic", "scaibunker:execute", []client.CheckOption{client.WithResource("bunker", "b1")}, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				opts := append([]client.CheckOption{client.WithConsistencyToken(zt)}, tt.opts...)
				d, err := c.HasModulePermission(ctx, "t|1", tt.user, tt.key, opts...)
				if err != nil {
					t.Fatal(err)
				}
				if d.Allowed != tt.want || d.DecisionID == "" || d.CheckedAt == "" {
					t.Errorf("decision = %+v, want allowed=%v with an id and a token", d, tt.want)
				}
			})
		}
	})

	t.Run("CheckBulk", func(t *testing.T) {
		// 230 items: three requests, answers in order.
		var reqs []client.CheckRequest
		for i := range 230 {
			user := "sa:ci+bot"
			if i%2 == 1 {
				user = fmt.Sprintf("nobody%d", i)
			}
			reqs = append(reqs, client.CheckRequest{TenantID: "t|1", UserID: user, Permission: "scaibunker:create", ConsistencyToken: zt})
		}
		got, err := c.CheckBulk(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range got {
			if d.Allowed != (i%2 == 0) || d.Err != nil {
				t.Fatalf("result %d = %+v, want allowed=%v", i, d, i%2 == 0)
			}
		}
	})

	t.Run("EffectivePermissions", func(t *testing.T) {
		got, err := c.EffectivePermissions(ctx, "t|1", "sa:ci+bot", client.WithConsistencyToken(zt))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"scaibunker:create", "scaibunker:execute"}; !slices.Equal(got, want) {
			t.Errorf("permissions = %v, want %v", got, want)
		}
	})

	t.Run("Keys", func(t *testing.T) {
		keys, err := c.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(keys, func(k client.KeyInfo) bool { return k.Key == "scaibunker:execute" })
		if i < 0 || keys[i].Module != "scaibunker" || keys[i].Description == "" {
			t.Errorf("scaibunker:execute missing or incomplete in %d keys", len(keys))
		}
	})

	t.Run("Role", func(t *testing.T) {
		r, err := c.GetRole(ctx, "t|1", "bot=ops")
		if err != nil {
			t.Fatal(err)
		}
		if r.TenantID != "t|1" || r.RoleID != "bot=ops" || !slices.Equal(r.ModulePermissions, []string{"scaibunker:create", "scaibunker:execute"}) {
			t.Errorf("role = %+v", r)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		tests := []struct {
			name string
			err  func() error
			is   func(error) bool
		}{
			{"NotFoundRole", func() error { _, err := c.GetRole(ctx, "t|1", "nope"); return err }, client.IsNotFound},
			{"NotFoundPartner", func() error { _, err := c.PutTenant(ctx, "t2", "nope"); return err }, client.IsNotFound},
			{"ConflictPartner", func() error { _, err := c.DeletePartner(ctx, "acme"); return err }, client.IsConflict},
			{"InvalidKey", func() error {
				_, err := c.HasModulePermission(ctx, "t|1", "alice", "scaibunker:fly")
				return err
			}, client.IsInvalid},
			{"InvalidBuiltInRole", func() error {
				_, err := c.PutRole(ctx, client.Role{TenantID: "t|1", RoleID: "tenant_admin", Name: "x"})
				return err
			}, client.IsInvalid},
			{"Unauthorized", func() error {
				_, err := MustNew(t, url, "wrong").Keys(ctx)
				return err
			}, client.IsUnauthorized},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.err()
				if !tt.is(err) {
					t.Fatalf("err = %v", err)
				}
				var e *client.Error
				if !errors.As(err, &e) || e.RequestID == "" || e.Message == "" {
					t.Errorf("error %+v lacks a request id or message", e)
				}
			})
		}
	})

	t.Run("Tokens", func(t *testing.T) {
		tok, err := c.CreateToken(ctx, "module-ci", client.ScopeCheck)
		if err != nil {
			t.Fatal(err)
		}
		if tok.ID == "" || tok.Secret == "" || tok.CreatedAt.IsZero() || !slices.Equal(tok.Scopes, []string{"check"}) {
			t.Fatalf("created token = %+v", tok)
		}
		mod := MustNew(t, url, tok.Secret)
		if _, err := mod.Keys(ctx); err != nil {
			t.Errorf("check-scoped token cannot list keys: %v", err)
		}
		if _, err := mod.PutPartner(ctx, "p9"); !client.IsForbidden(err) {
			t.Errorf("check-scoped token provisioning: err = %v, want forbidden", err)
		}
		list, err := c.ListTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(list, func(x client.Token) bool { return x.ID == tok.ID })
		if i < 0 || list[i].Secret != "" || list[i].RevokedAt != nil {
			t.Fatalf("listed token = %+v", list)
		}
		if err := c.RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := mod.Keys(ctx); !client.IsUnauthorized(err) {
			t.Errorf("revoked token: err = %v, want unauthorized", err)
		}
		list, _ = c.ListTokens(ctx)
		if i := slices.IndexFunc(list, func(x client.Token) bool { return x.ID == tok.ID }); i < 0 || list[i].RevokedAt == nil {
			t.Errorf("revoked token not marked revoked in %+v", list)
		}
	})

	t.Run("TenantToken", func(t *testing.T) {
		tok, err := c.CreateTenantToken(ctx, "t1-ci", []string{"t1"}, client.ScopeCheck)
		if err != nil || !slices.Equal(tok.Tenants, []string{"t1"}) {
			t.Fatalf("created token = %+v, %v", tok, err)
		}
		scoped := MustNew(t, url, tok.Secret)
		tenants, next, err := scoped.ListTenants(ctx, "")
		if err != nil || next != "" || len(tenants) > 1 || (len(tenants) == 1 && tenants[0].TenantID != "t1") {
			t.Errorf("tenants of a t1 token = %+v, %q, %v", tenants, next, err)
		}
		if _, err := scoped.EffectivePermissions(ctx, "t2", "alice"); !client.IsForbidden(err) {
			t.Errorf("a t1 token in t2: err = %v, want forbidden", err)
		}
		list, err := c.ListTokens(ctx)
		if i := slices.IndexFunc(list, func(x client.Token) bool { return x.ID == tok.ID }); err != nil || i < 0 || !slices.Equal(list[i].Tenants, []string{"t1"}) {
			t.Errorf("listed = %+v, %v", list, err)
		}
	})

	t.Run("Audit", func(t *testing.T) {
		// Pages of 2 over the scaibunker decisions: every event once, oldest first.
		var events []client.AuditEvent
		for ev, err := range c.AuditEvents(ctx, client.AuditQuery{Module: "scaibunker", TenantID: "t|1", Limit: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
		}
		// 5 checks and 115 allowed of the 230 bulk items.
		if len(events) != 5+230 {
			t.Errorf("%d scaibunker events, want %d", len(events), 5+230)
		}
		seen := map[string]bool{}
		for i, ev := range events {
			if seen[ev.DecisionID] {
				t.Fatalf("event %s seen twice", ev.DecisionID)
			}
			seen[ev.DecisionID] = true
			if i > 0 && ev.OccurredAt.Before(events[i-1].OccurredAt) {
				t.Fatalf("event %d is older than event %d", i, i-1)
			}
		}
		i := slices.IndexFunc(events, func(ev client.AuditEvent) bool { return ev.Action == "bunker.exec" })
		if i < 0 || events[i].ResourceType != "bunker" || events[i].ResourceID != "b1" || events[i].Decision != client.DecisionAllowed {
			t.Errorf("bunker.exec event missing or wrong")
		}

		// The provisioning writes carry the actor sent by WithActor.
		page, err := c.ListAuditEvents(ctx, client.AuditQuery{Module: "authzd", ActorUserID: "ops-anna", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, ev := range page.Events {
			actions = append(actions, ev.Action)
		}
		for _, want := range []string{"partner.put", "tenant.put", "role.put", "member.add", "resource.put"} {
			if !slices.Contains(actions, want) {
				t.Errorf("no %s event by ops-anna in %v", want, actions)
			}
		}

		denied, err := c.ListAuditEvents(ctx, client.AuditQuery{Module: "scaibunker", Decision: client.DecisionDenied,
			Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range denied.Events {
			if ev.Decision != client.DecisionDenied {
				t.Fatalf("decision filter let %+v through", ev)
			}
		}
	})

	t.Run("Middleware", func(t *testing.T) {
		gate := middleware.NewGate(c,
			middleware.WithTenant(middleware.Header("X-Tenant-Id")),
			middleware.WithUser(middleware.Header("X-User-Id")),
			middleware.WithConsistencyToken(func(*http.Request) string { return zt }),
			middleware.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		r := chi.NewRouter()
		r.With(gate.Require("scaibunker:execute", middleware.WithResource("bunker", middleware.PathValue("id")))).
			Post("/bunkers/{id}/exec", func(w http.ResponseWriter, r *http.Request) {})
		for _, tc := range []struct {
			user string
			want int
		}{
			{"sa:ci+bot", http.StatusOK},
			{"vic", http.StatusForbidden},
		} {
			req := httptest.NewRequest("POST", "/bunkers/b1/exec", nil)
			req.Header.Set("X-Tenant-Id", "t|1")
			req.Header.Set("X-User-Id", tc.user)
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("%s: status %d, want %d (%s)", tc.user, rec.Code, tc.want, rec.Body)
			}
		}
	})

	t.Run("Offboard", func(t *testing.T) {
		must := Must(t)
		must(c.RemoveRoleMember(ctx, "t|1", client.RoleTenantViewer, "vic"))
		must(c.DeleteResource(ctx, "t|1", client.ResourceBunker, "b1"))
		must(c.PutSuperAdmin(ctx, "root"))
		must(c.DeleteSuperAdmin(ctx, "root"))
		must(c.PutPartnerAdmin(ctx, "acme", "pa"))
		must(c.DeletePartnerAdmin(ctx, "acme", "pa"))

		zt := must(c.DeleteTenant(ctx, "t|1"))
		d, err := c.HasModulePermission(ctx, "t|1", "sa:ci+bot", "scaibunker:create", client.WithConsistencyToken(zt))
		if err != nil || d.Allowed {
			t.Errorf("after offboarding: %+v, %v; want denied", d, err)
		}
		if _, err := c.GetRole(ctx, "t|1", "bot=ops"); !client.IsNotFound(err) {
			t.Errorf("role after offboarding: err = %v, want not found", err)
		}
		must(c.DeletePartner(ctx, "acme"))
	})
}
