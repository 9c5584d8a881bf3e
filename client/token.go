package client

import (
	"context"
	"net/http"
	"time"
)

// API token scopes.
const (
	ScopeCheck     = "check"      // checks, effective permissions, keys
	ScopeProvision = "provision"  // partners, tenants, admins, roles, members, resources
	ScopeAuditRead = "audit:read" // the audit trail
	ScopeAdmin     = "admin"      // API tokens
)

// Token is an authzd API token. It repeats internal/http's tokenAnswer
// because this module may not import authzd's packages (see the package
// comment); clientcontract keeps the two in step against a real authzd.
type Token struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// Tenants are the only tenants the token reaches; empty reaches every tenant.
	Tenants []string `json:"tenants,omitempty"`
	// Secret is the bearer token itself. Only CreateToken returns it; authzd keeps a hash.
	Secret    string     `json:"token,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// CreateToken creates an API token with the scopes. Keep Token.Secret: it is shown once.
//
// CreateToken is not idempotent, so it is retried only when the connection could not be
// opened; after any other failure the token may or may not exist (see ListTokens).
func (c *Client) CreateToken(ctx context.Context, name string, scopes ...string) (Token, error) {
	return c.CreateTenantToken(ctx, name, nil, scopes...)
}

// CreateTenantToken is CreateToken for a token that reaches only the tenants (1 to 100
// tenant ids; nil reaches every tenant). A calling token can mint only scopes and
// tenants it holds itself.
func (c *Client) CreateTenantToken(ctx context.Context, name string, tenants []string, scopes ...string) (Token, error) {
	if scopes == nil {
		scopes = []string{}
	}
	body := struct {
		Name    string   `json:"name"`
		Scopes  []string `json:"scopes"`
		Tenants []string `json:"tenants,omitempty"`
	}{name, scopes, tenants}
	var t Token
	if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/tokens", body: body}, &t); err != nil {
		return Token{}, err
	}
	return t, nil
}

// ListTokens lists every API token, revoked ones included, without secrets.
func (c *Client) ListTokens(ctx context.Context) ([]Token, error) {
	resp, err := get[struct {
		Tokens []Token `json:"tokens"`
	}](ctx, c, "/v1/tokens", nil)
	return resp.Tokens, err
}

// RevokeToken revokes an API token; requests bearing it are refused from then on.
func (c *Client) RevokeToken(ctx context.Context, tokenID string) error {
	path, err := buildPath("/v1/tokens/{token_id}", tokenID)
	if err != nil {
		return err
	}
	return c.do(ctx, call{method: http.MethodDelete, path: path, idempotent: true}, nil)
}
