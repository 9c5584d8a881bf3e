package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/internal/pgtest"
)

// TestTokenCreateTenants: `authzd token create --tenant` makes a token that
// reaches only those tenants; a bad tenant list is refused naming it.
func TestTokenCreateTenants(t *testing.T) {
	cfg := app.DefaultConfig()
	cfg.DatabaseURL = pgtest.MustCreate(t)
	var out bytes.Buffer
	err := token(context.Background(), cfg, []string{"create", "--name", "acme-admin", "--scope", "check", "--tenant", "acme", "--tenant", "acme-eu"}, &out)
	var got struct {
		Token   string   `json:"token"`
		Tenants []string `json:"tenants"`
	}
	if err != nil || json.Unmarshal(out.Bytes(), &got) != nil || got.Token == "" || strings.Join(got.Tenants, ",") != "acme,acme-eu" {
		t.Fatalf("token create: %v, %s", err, out.String())
	}
	out.Reset()
	if err := token(context.Background(), cfg, []string{"list"}, &out); err != nil || !strings.Contains(out.String(), `"acme-eu"`) {
		t.Errorf("token list: %v, %s", err, out.String())
	}
	err = token(context.Background(), cfg, []string{"create", "--name", "x", "--scope", "check", "--tenant", "a", "--tenant", "a"}, &out)
	if err == nil || !strings.Contains(err.Error(), `tenants[1]: "a" is repeated`) {
		t.Errorf("repeated --tenant: %v", err)
	}
}
