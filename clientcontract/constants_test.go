package clientcontract_test

import (
	"slices"
	"testing"

	"github.com/scailabs/authzd/client"
	"github.com/scailabs/authzd/schema"
)

// TestResourceTypes: the client's resource type constants are the resource
// types the module manifests define, all of them (the client cannot import
// the schema package: it would inherit SpiceDB's schema compiler).
func TestResourceTypes(t *testing.T) {
	m, err := schema.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range m.Resources {
		want = append(want, r.Type)
	}
	got := []string{client.ResourceBinding, client.ResourceBunker} // every Resource* constant of client/check.go
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("client resource types %v, schema's %v: add or remove a Resource* constant in client/check.go", got, want)
	}
}
