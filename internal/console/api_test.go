package console

import "testing"

func TestPathEscapesSegments(t *testing.T) {
	tests := []struct {
		pattern string
		segs    []string
		want    string
	}{
		{"/v1/tenants/{}/roles/{}", []string{"acme", "ops"}, "/v1/tenants/acme/roles/ops"},
		{"/v1/tenants/{}/roles/{}", []string{"a%b", "../x"}, "/v1/tenants/a%25b/roles/..%2Fx"},
		{"/v1/tenants/{}/users/{}/permissions", []string{"t1", "sa:bot"}, "/v1/tenants/t1/users/sa:bot/permissions"},
	}
	for _, tt := range tests {
		if got := p(tt.pattern, tt.segs...); got != tt.want {
			t.Errorf("p(%q, %q) = %q, want %q", tt.pattern, tt.segs, got, tt.want)
		}
	}
}
