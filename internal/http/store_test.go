package http

// Fast tests of what the server asks of Postgres, each role a small fake.

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/scailabs/authzd/internal/authz"
)

// fakeTokens verifies one service token and revokes it; it counts the
// verifications that reach it (past the authenticator's cache).
type fakeTokens struct {
	mu       sync.Mutex
	secret   string
	token    authz.Token
	revoked  bool
	verified int
}

func (f *fakeTokens) Authenticate(_ context.Context, raw string) (authz.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verified++
	if raw != f.secret || f.revoked {
		return authz.Token{}, authz.Errorf(authz.EUNAUTHORIZED, "unknown or revoked token")
	}
	return f.token, nil
}

func (f *fakeTokens) Token(context.Context, string) (authz.Token, error) {
	return f.token, nil
}

func (f *fakeTokens) CreateToken(context.Context, string, []string, []string) (authz.Token, string, error) {
	return f.token, f.secret, nil
}

func (f *fakeTokens) ListTokens(context.Context) ([]authz.Token, error) {
	return []authz.Token{f.token}, nil
}

func (f *fakeTokens) RevokeToken(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = f.revoked || id == f.token.ID
	return nil
}

// fakeReady answers readiness with err.
type fakeReady struct{ err error }

func (f fakeReady) Ready(context.Context) error { return f.err }
func (f fakeReady) Ping(context.Context) error  { return f.err }

// TestServiceTokenCacheAndRevocation: a verified service token is trusted
// from the cache until revoked through this instance, which takes effect at
// once.
func TestServiceTokenCacheAndRevocation(t *testing.T) {
	tokens := &fakeTokens{secret: "svc-secret", token: authz.Token{ID: "tok1", Name: "svc", Scopes: []string{authz.ScopeCheck}}}
	f := newFixture(t, func(o *Options) { o.TokenVerifier, o.Tokens = tokens, tokens })
	check := `{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create"}`
	for range 3 {
		if a := f.do(t, "POST", "/v1/permissions/check", check, "Authorization", "Bearer svc-secret"); a.status != http.StatusOK {
			t.Fatalf("check with the service token: %d %s", a.status, a.raw)
		}
	}
	if tokens.verified != 1 {
		t.Errorf("verifications %d, want 1 (then the cache)", tokens.verified)
	}
	if a := f.do(t, "DELETE", "/v1/tokens/tok1", ""); a.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", a.status, a.raw)
	}
	if a := f.do(t, "POST", "/v1/permissions/check", check, "Authorization", "Bearer svc-secret"); a.status != http.StatusUnauthorized {
		t.Errorf("check after revocation: %d, want 401: %s", a.status, a.raw)
	}
}

// TestReadyzNamesWhatIsDown: readiness is 503 when either dependency fails,
// and names the one that did.
func TestReadyzNamesWhatIsDown(t *testing.T) {
	down := authz.Errorf(authz.EUNAVAILABLE, "down")
	cases := []struct {
		name              string
		graph, database   error
		status            int
		spicedb, postgres string
	}{
		{"OK", nil, nil, http.StatusOK, "ok", "ok"},
		{"SpiceDBDown", down, nil, http.StatusServiceUnavailable, "down", "ok"},
		{"PostgresDown", nil, down, http.StatusServiceUnavailable, "ok", "down"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.Readiness, o.Database = fakeReady{tc.graph}, fakeReady{tc.database} })
			a := f.do(t, "GET", "/readyz", "")
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.raw)
			}
			checks, _ := a.body["checks"].(map[string]any)
			if checks["spicedb"] != tc.spicedb || !strings.Contains(a.raw, `"postgres":"`+tc.postgres+`"`) {
				t.Errorf("checks %v, want spicedb %q and postgres %q", checks, tc.spicedb, tc.postgres)
			}
		})
	}
}
