package spicedb

import (
	"testing"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/schema"
)

// mustManifests loads the embedded module manifests.
func mustManifests(tb testing.TB) *schema.Model {
	tb.Helper()
	m, err := schema.Embedded()
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// mustWrite returns must, which fails tb when the write it is given failed,
// for lines such as must(g.PutTenant(ctx, "t", "p")).
func mustWrite(tb testing.TB) func(zedToken string, err error) string {
	return func(zedToken string, err error) string {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return zedToken
	}
}

// user is the user subject id.
func user(id string) authz.Subject { return authz.Subject{Kind: authz.SubjectUser, ID: id} }
