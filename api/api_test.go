package api_test

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/scailabs/authzd/api"
)

// TestOpenAPI checks what a YAML parser can: the document parses, every operation has an
// id and a scope, and every $ref points at something that exists.
func TestOpenAPI(t *testing.T) {
	var doc map[string]any
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("parse: %v", err)
	}
	if got, want := doc["openapi"], "3.0.3"; got != want {
		t.Errorf("openapi = %v, want %v", got, want)
	}

	t.Run("Operations", func(t *testing.T) {
		paths := doc["paths"].(map[string]any)
		ids := map[string]bool{}
		for path, item := range paths {
			for method, op := range item.(map[string]any) {
				if method == "parameters" {
					continue
				}
				op := op.(map[string]any)
				id, _ := op["operationId"].(string)
				if id == "" {
					t.Errorf("%s %s: no operationId", method, path)
				}
				if ids[id] {
					t.Errorf("%s %s: operationId %q used twice", method, path, id)
				}
				ids[id] = true
				if strings.HasPrefix(path, "/v1/") && path != "/v1/openapi.yaml" {
					if _, ok := op["x-authzd-scope"]; !ok {
						t.Errorf("%s %s: no x-authzd-scope", method, path)
					}
				}
			}
		}
	})

	t.Run("Refs", func(t *testing.T) {
		var refs []string
		collectRefs(doc, &refs)
		if len(refs) == 0 {
			t.Fatal("no $ref found")
		}
		for _, ref := range refs {
			if !resolves(doc, ref) {
				t.Errorf("$ref %q does not resolve", ref)
			}
		}
	})
}

// TestRoutes lists the routes of the contract in /tmp/design.md once, so that a route
// dropped from the document fails here.
func TestRoutes(t *testing.T) {
	want := []string{
		"DELETE /v1/partners/{partner_id}",
		"DELETE /v1/partners/{partner_id}/admins/{user_id}",
		"DELETE /v1/platform/super_admins/{user_id}",
		"DELETE /v1/tenants/{tenant_id}",
		"DELETE /v1/tenants/{tenant_id}/resources/{type}/{resource_id}",
		"DELETE /v1/tenants/{tenant_id}/roles/{role_id}",
		"DELETE /v1/tenants/{tenant_id}/roles/{role_id}/members/{user_id}",
		"DELETE /v1/tokens/{token_id}",
		"GET /.well-known/authzen-configuration",
		"GET /healthz",
		"GET /metrics",
		"GET /readyz",
		"GET /v1/audit/chain",
		"GET /v1/audit/checkpoints",
		"GET /v1/audit/events",
		"GET /v1/audit/keys",
		"GET /v1/audit/rotations",
		"GET /v1/export",
		"GET /v1/import/status",
		"GET /v1/openapi.yaml",
		"GET /v1/permissions/keys",
		"GET /v1/shadow/report",
		"GET /v1/tenants",
		"GET /v1/tenants/{tenant_id}/members",
		"GET /v1/tenants/{tenant_id}/roles",
		"GET /v1/tenants/{tenant_id}/roles/{role_id}",
		"GET /v1/tenants/{tenant_id}/users/{user_id}/permissions",
		"GET /v1/tokens",
		"POST /access/v1/evaluation",
		"POST /access/v1/evaluations",
		"POST /access/v1/search/action",
		"POST /access/v1/search/resource",
		"POST /access/v1/search/subject",
		"POST /v1/import",
		"POST /v1/permissions/check",
		"POST /v1/permissions/check_bulk",
		"POST /v1/permissions/explain",
		"POST /v1/tokens",
		"POST /v1/whatif",
		"PUT /v1/partners/{partner_id}",
		"PUT /v1/partners/{partner_id}/admins/{user_id}",
		"PUT /v1/platform/super_admins/{user_id}",
		"PUT /v1/tenants/{tenant_id}",
		"PUT /v1/tenants/{tenant_id}/resources/{type}/{resource_id}",
		"PUT /v1/tenants/{tenant_id}/roles/{role_id}",
		"PUT /v1/tenants/{tenant_id}/roles/{role_id}/members/{user_id}",
	}
	routes, err := api.Routes()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(routes, want) {
		t.Errorf("routes differ\n got: %q\nwant: %q", routes, want)
	}
}

func collectRefs(v any, refs *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				*refs = append(*refs, s)
				continue
			}
			collectRefs(x, refs)
		}
	case []any:
		for _, x := range v {
			collectRefs(x, refs)
		}
	}
}

func resolves(doc map[string]any, ref string) bool {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var cur any = doc
	for _, seg := range strings.Split(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[seg]; !ok {
			return false
		}
	}
	return true
}
