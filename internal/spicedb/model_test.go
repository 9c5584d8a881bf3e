package spicedb

import (
	"slices"
	"testing"

	"github.com/scailabs/authzd/internal/authz"
)

// TestModelAgreesWithManifests: the resource types and the keys on each that
// the adapter reads from the compiled schema are those the manifests define.
// Both derive from one source (schema/); this keeps the two derivations equal.
func TestModelAgreesWithManifests(t *testing.T) {
	manifests := mustManifests(t)
	m, err := parseModel(manifests.Schema())
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, r := range manifests.Resources {
		types = append(types, r.Type)
		var want []string
		for _, k := range r.Keys {
			want = append(want, k.Relation())
		}
		var got []string
		for rel := range m.resources[r.Type] {
			got = append(got, rel)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: the schema has keys %v, the manifests %v", r.Type, got, want)
		}
	}
	if got := m.resourceTypeNames(); !slices.Equal(got, types) {
		t.Errorf("resource types: the schema has %v, the manifests %v", got, types)
	}
}

// TestModelNames: the object types and relations authzd names in Go
// (internal/authz) are those the core schema defines.
func TestModelNames(t *testing.T) {
	m, err := parseModel(mustManifests(t).Schema())
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]map[string]bool{}
	for _, def := range m.compiled.ObjectDefinitions {
		defined[def.GetName()] = map[string]bool{}
		for _, rel := range def.GetRelation() {
			defined[def.GetName()][rel.GetName()] = true
		}
	}
	for typ, rels := range map[string][]string{
		authz.TypeUser: nil, authz.TypeServiceAccount: nil,
		authz.TypePlatform: {authz.RoleSuperAdmin},
		authz.TypePartner:  {authz.RelPlatform, authz.RelAdmin},
		authz.TypeTenant:   append([]string{authz.RelPlatform, authz.RelPartner, authz.RoleSuperAdmin, authz.RolePartnerAdmin}, authz.TenantRoles...),
		authz.TypeRole:     {authz.RelTenant, authz.RelMember},
		"bunker":           {authz.RelTenant, authz.RelOwner},
	} {
		if defined[typ] == nil {
			t.Errorf("the schema defines no %s", typ)
		}
		for _, rel := range rels {
			if !defined[typ][rel] {
				t.Errorf("the schema's %s has no relation %s", typ, rel)
			}
		}
	}
}
