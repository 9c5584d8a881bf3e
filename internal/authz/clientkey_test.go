package authz_test

// This fuzz target lives here rather than in clientcontract/ so that its
// fuzzing binary holds only the two key grammars, not all of authzd.

import (
	"strings"
	"testing"

	"github.com/scailabs/authzd/client"
	"github.com/scailabs/authzd/internal/authz"
)

// FuzzValidateKey: the client's copy of the key grammar accepts exactly the
// keys the server's accepts (client/key.go says why the copy exists).
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"scaibunker:create", "scaibunker:create:session", "scaibunker", "ScaiBunker:create",
		"scaibunker:create:", "scaibunker:a__b", "scaibunker:create_", "1bunker:create", "_a:b", "a:_b",
		"a:" + strings.Repeat("b", 57), "a:" + strings.Repeat("b", 58), "é:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, serverErr := authz.ParseKey(s)
		clientErr := client.ValidateKey(s)
		if (serverErr == nil) != (clientErr == nil) {
			t.Fatalf("key %q: server says %v, client says %v", s, serverErr, clientErr)
		}
	})
}
