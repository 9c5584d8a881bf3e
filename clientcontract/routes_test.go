package clientcontract_test

// The client module cannot import the server's packages (it would hand them to
// every module that imports the client), so the tests that keep it honest
// against api/openapi.yaml and a real authzd live here, in the main module.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/authzd/api"
	"github.com/scailabs/authzd/client"
)

// MustClient returns a client of srv with fast retries, so that tests do not wait. It repeats the helper of
// client/client_test.go: that one lives in the client module's tests, which no other module can import.
func MustClient(tb testing.TB, srv *httptest.Server, opts ...client.Option) *client.Client {
	tb.Helper()
	opts = append([]client.Option{client.WithRetry(3, time.Millisecond, 5*time.Millisecond)}, opts...)
	c, err := client.New(srv.URL, "secret", opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// okBody satisfies every decoder of the client.
const okBody = `{"zed_token":"zt","allowed":true,"checked_at":"zt","decision_id":"d","results":[{"allowed":true}],"permissions":[],"keys":[],"events":[],"next_cursor":"","tokens":[],"id":"tok1","name":"n","scopes":["check"],"token":"s","created_at":"2026-05-01T00:00:00Z","role_id":"ops","tenant_id":"t1","module_permissions":[]}`

// TestRoutes calls every method of the client and checks that each request matches an
// operation of api/openapi.yaml, and that every /v1 operation is called.
func TestRoutes(t *testing.T) {
	routes, err := api.Routes()
	if err != nil {
		t.Fatal(err)
	}
	type route struct {
		method, path string
		re           *regexp.Regexp
	}
	var spec []route
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		segs := strings.Split(path, "/")
		for i, seg := range segs {
			if strings.HasPrefix(seg, "{") {
				segs[i] = `[^/]+`
			} else {
				segs[i] = regexp.QuoteMeta(seg)
			}
		}
		spec = append(spec, route{method, path, regexp.MustCompile("^" + strings.Join(segs, "/") + "$")})
	}

	called := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		matched := false
		for _, s := range spec {
			if s.method == r.Method && s.re.MatchString(r.URL.EscapedPath()) {
				called[s.method+" "+s.path] = true
				matched = true
			}
		}
		if !matched {
			t.Errorf("%s %s is not in openapi.yaml", r.Method, r.URL.EscapedPath())
		}
		if r.Method == http.MethodPost && r.URL.Path == "/v1/tokens" {
			w.WriteHeader(http.StatusCreated)
		}
		io.WriteString(w, okBody)
	}))
	defer srv.Close()
	c := MustClient(t, srv)
	ctx := context.Background()
	calls := []func() error{
		func() error { _, err := c.PutPartner(ctx, "p1"); return err },
		func() error { _, err := c.DeletePartner(ctx, "p1"); return err },
		func() error { _, err := c.PutTenant(ctx, "t1", "p1"); return err },
		func() error { _, err := c.DeleteTenant(ctx, "t1"); return err },
		func() error { _, err := c.PutSuperAdmin(ctx, "alice"); return err },
		func() error { _, err := c.DeleteSuperAdmin(ctx, "alice"); return err },
		func() error { _, err := c.PutPartnerAdmin(ctx, "p1", "alice"); return err },
		func() error { _, err := c.DeletePartnerAdmin(ctx, "p1", "alice"); return err },
		func() error {
			_, err := c.PutRole(ctx, client.Role{TenantID: "t1", RoleID: "ops", ModulePermissions: []string{"m:k"}})
			return err
		},
		func() error { _, err := c.GetRole(ctx, "t1", "ops"); return err },
		func() error { _, err := c.DeleteRole(ctx, "t1", "ops"); return err },
		func() error { _, err := c.AddRoleMember(ctx, "t1", "ops", "sa:bot"); return err },
		func() error { _, err := c.RemoveRoleMember(ctx, "t1", "ops", "sa:bot"); return err },
		func() error { _, err := c.PutResource(ctx, "t1", "bunker", "b1", "alice"); return err },
		func() error { _, err := c.DeleteResource(ctx, "t1", "bunker", "b1"); return err },
		func() error { _, err := c.HasModulePermission(ctx, "t1", "alice", "m:k"); return err },
		func() error {
			_, err := c.CheckBulk(ctx, []client.CheckRequest{{TenantID: "t1", UserID: "alice", Permission: "m:k"}})
			return err
		},
		func() error { _, err := c.EffectivePermissions(ctx, "t1", "alice"); return err },
		func() error { _, err := c.Explain(ctx, "t1", "alice", "m:k"); return err },
		func() error { _, err := c.Keys(ctx); return err },
		func() error {
			_, err := c.WhatIf(ctx, client.WhatIfRequest{TenantID: "t1", Since: time.Now().Add(-time.Hour)})
			return err
		},
		func() error { _, err := c.ListAuditEvents(ctx, client.AuditQuery{}); return err },
		func() error { _, err := c.AuditChain(ctx, -1, 10, time.Time{}); return err },
		func() error { _, err := c.AuditCheckpoints(ctx, -1, 10); return err },
		func() error { _, err := c.AuditKeys(ctx); return err },
		func() error { _, err := c.AuditKeyRotations(ctx, -1, 10); return err },
		func() error { _, err := c.CreateToken(ctx, "n", client.ScopeCheck); return err },
		func() error { _, err := c.ListTokens(ctx); return err },
		func() error { return c.RevokeToken(ctx, "tok1") },
		func() error {
			_, err := c.Import(ctx, strings.NewReader(`{"kind":"partner","partner_id":"p1"}`), client.DryRun())
			return err
		},
		func() error { _, err := c.Export(ctx, io.Discard, "t1"); return err },
		func() error { _, err := c.ImportStatus(ctx, "imp-1"); return err },
		func() error { _, err := c.ShadowReport(ctx, client.ShadowQuery{Since: time.Now()}); return err },
		func() error { _, err := c.CreateTenantToken(ctx, "n", []string{"t1"}, client.ScopeCheck); return err },
		func() error { _, _, err := c.ListTenants(ctx, ""); return err },
		func() error { _, err := c.ListRoles(ctx, "t1"); return err },
		func() error { _, _, err := c.ListMembers(ctx, "t1", ""); return err },
	}
	for i, call := range calls {
		if err := call(); err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	for _, r := range routes {
		if strings.HasPrefix(r, "GET /v1/openapi") || !strings.Contains(r, " /v1/") {
			continue
		}
		if !called[r] {
			t.Errorf("no client method calls %s", r)
		}
	}
}
