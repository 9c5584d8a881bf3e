package authz

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseKey: a key that parses is one SpiceDB can name without ambiguity
// (its relation maps back to it and fits SpiceDB's limit, its module is a
// valid module); a key that does not parse is refused as the caller's mistake.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"scaibunker:create", "scaibunker:create:session", "scaibunker:l2_transparency",
		"scaibunker", "ScaiBunker:create", "scaibunker:create:", "scaibunker:a__b", "scaibunker:create_",
		"1bunker:create", "a:" + strings.Repeat("b", 60), "a_:b", "a:_b", "a::b", "é:b", "a:b\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("ParseKey(%q): code %q, want %q", s, ErrorCode(err), EINVALID)
			}
			if !utf8.ValidString(ErrorMessage(err)) {
				t.Fatalf("ParseKey(%q): message is not UTF-8: %q", s, ErrorMessage(err))
			}
			return
		}
		if k.String() != s {
			t.Fatalf("ParseKey(%q).String() = %q", s, k.String())
		}
		back, err := KeyFromRelation(k.Relation())
		if err != nil || back != k {
			t.Fatalf("KeyFromRelation(%q) = %v, %v; want %v", k.Relation(), back, err, k)
		}
		if n := len(k.GrantRelation()); n > maxRelationLen {
			t.Fatalf("%q: grant relation is %d characters (max %d)", s, n, maxRelationLen)
		}
		if err := ValidModule(k.Module()); err != nil {
			t.Fatalf("%q parses but its module does not: %v", s, err)
		}
	})
}

// FuzzParseSubject: an id that validates is one SpiceDB accepts and that
// authzd's own separators cannot split; a subject prints back to what parses
// to it.
func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{"alice", "sa:ci-bot", "sa:", "sa:sa:x", "a/b", "a b", "a:b", "a#b", "a@b", "",
		"user|42", "x=y+z", strings.Repeat("a", MaxIDLen), strings.Repeat("a", MaxIDLen+1), "é", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := ValidateID("id", s); err == nil {
			if s == "" || len(s) > MaxIDLen || strings.ContainsAny(s, "/:#@ \t\n") {
				t.Fatalf("ValidateID accepted %q", s)
			}
		} else if ErrorCode(err) != EINVALID || !strings.HasPrefix(ErrorMessage(err), "id ") {
			t.Fatalf("ValidateID(%q): %v; want an invalid error naming the field", s, err)
		}
		subj, err := ParseSubject("user_id", s)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("ParseSubject(%q): code %q", s, ErrorCode(err))
			}
			return
		}
		if subj.String() != s {
			t.Fatalf("ParseSubject(%q).String() = %q", s, subj.String())
		}
		if again, err := ParseSubject("user_id", subj.String()); err != nil || again != subj {
			t.Fatalf("%q: parsed %+v, printed and parsed again %+v, %v", s, subj, again, err)
		}
	})
}
