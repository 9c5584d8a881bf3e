package spicedb

import (
	"slices"
	"testing"
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
