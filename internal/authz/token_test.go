package authz

import (
	"strings"
	"testing"
)

func TestTokenReaches(t *testing.T) {
	every := Token{Name: "ops"}
	acme := Token{Name: "acme-admin", Tenants: []string{"acme"}}
	if every.Reaches("anything") != nil || acme.Reaches("acme") != nil {
		t.Error("a token does not reach a tenant it should")
	}
	err := acme.Reaches("globex")
	if ErrorCode(err) != EFORBIDDEN || ErrorMessage(err) != `token "acme-admin" reaches ["acme"], not "globex"` {
		t.Errorf("acme token in globex: %v", err)
	}
	if every.ReachesAll("every tenant") != nil || ErrorCode(acme.ReachesAll("every tenant")) != EFORBIDDEN {
		t.Error("ReachesAll")
	}
}

func TestTokenCovers(t *testing.T) {
	tok := Token{Scopes: []string{ScopeCheck, ScopeAdmin}, Tenants: []string{"a", "b"}}
	tests := []struct {
		scopes, tenants []string
		want            bool
	}{
		{[]string{ScopeCheck}, []string{"a"}, true},
		{[]string{ScopeCheck, ScopeAdmin}, []string{"b", "a"}, true},
		{[]string{ScopeProvision}, []string{"a"}, false},
		{[]string{ScopeCheck}, []string{"a", "c"}, false},
		{[]string{ScopeCheck}, nil, false}, // every tenant is more than a and b
	}
	for _, tt := range tests {
		if got := tok.Covers(tt.scopes, tt.tenants); got != tt.want {
			t.Errorf("Covers(%v, %v) = %v, want %v", tt.scopes, tt.tenants, got, tt.want)
		}
	}
	if !(Token{Scopes: Scopes}).Covers([]string{ScopeCheck}, nil) {
		t.Error("an unscoped token does not cover a token for every tenant")
	}
}

func TestValidateTenants(t *testing.T) {
	many := make([]string, MaxTokenTenants+1)
	for i := range many {
		many[i] = "t" + strings.Repeat("x", i)
	}
	tests := []struct {
		tenants []string
		want    string // part of the error, "" for none
	}{
		{nil, ""},
		{[]string{"acme", "globex"}, ""},
		{[]string{}, "tenants must hold 1 to 100"},
		{[]string{"acme", "a b"}, "tenants[1]"},
		{[]string{"acme", "acme"}, `tenants[1]: "acme" is repeated`},
		{many, "got 101"},
		{many[:MaxTokenTenants], ""},
	}
	for _, tt := range tests {
		err := ValidateTenants(tt.tenants)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(ErrorMessage(err), tt.want)) {
			t.Errorf("ValidateTenants(%d ids): %v, want %q", len(tt.tenants), err, tt.want)
		}
	}
}
