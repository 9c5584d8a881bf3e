package authz

import (
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	cases := []struct {
		in, relation, module string
		ok                   bool
	}{
		{"scaibunker:create", "scaibunker__create", "scaibunker", true},
		{"scaibunker:create:session", "scaibunker__create__session", "scaibunker", true},
		{"scaibunker:l2_transparency", "scaibunker__l2_transparency", "scaibunker", true},
		{"scaibunker", "", "", false},                            // one segment
		{"ScaiBunker:create", "", "", false},                     // upper case
		{"scaibunker:create:", "", "", false},                    // empty segment
		{"scaibunker:a__b", "", "", false},                       // "__" is the separator
		{"scaibunker:create_", "", "", false},                    // trailing '_'
		{"1bunker:create", "", "", false},                        // must start with a letter
		{"scaibunker:" + strings.Repeat("a", 60), "", "", false}, // SpiceDB name too long
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			k, err := ParseKey(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				if ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), tc.in[:min(len(tc.in), 20)]) {
					t.Errorf("error %v does not name the key", err)
				}
				return
			}
			if k.Relation() != tc.relation || k.Module() != tc.module || k.GrantRelation() != "grant_"+tc.relation {
				t.Errorf("got %s %s %s", k.Relation(), k.Module(), k.GrantRelation())
			}
			back, err := KeyFromRelation(k.Relation())
			if err != nil || back != k {
				t.Errorf("KeyFromRelation round trip: %v %v", back, err)
			}
		})
	}
}

func TestParseSubject(t *testing.T) {
	cases := []struct {
		in   string
		want Subject
		ok   bool
	}{
		{"alice", Subject{SubjectUser, "alice"}, true},
		{"sa:ci-bot", Subject{SubjectServiceAccount, "ci-bot"}, true},
		{"a|b=c+d_e-f", Subject{SubjectUser, "a|b=c+d_e-f"}, true},
		{"", Subject{}, false},
		{"sa:", Subject{}, false},
		{"x:y", Subject{}, false},
		{"a#b", Subject{}, false},
		{"a@b", Subject{}, false},
		{"a b", Subject{}, false},
		{"a/b", Subject{}, false},
		{strings.Repeat("a", MaxIDLen+1), Subject{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSubject("user_id", tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				if !strings.Contains(err.Error(), "user_id") {
					t.Errorf("error %v does not name the field", err)
				}
				return
			}
			if got != tc.want || got.String() != tc.in {
				t.Errorf("got %+v (%s), want %+v", got, got, tc.want)
			}
		})
	}
}

func TestScopedID(t *testing.T) {
	if id, err := ScopedID("role_id", "t1", "ops"); err != nil || id != "t1/ops" {
		t.Errorf("ScopedID = %q, %v", id, err)
	}
	if _, err := ScopedID("role_id", strings.Repeat("t", 600), strings.Repeat("r", 600)); ErrorCode(err) != EINVALID {
		t.Errorf("over-long scoped id: %v", err)
	}
}

func TestErrorMessageHidesInternals(t *testing.T) {
	err := Wrap(EINTERNAL, errSecret{}, "boom")
	if msg := ErrorMessage(err); msg != "internal error" {
		t.Errorf("internal message leaked: %q", msg)
	}
	if ErrorCode(errSecret{}) != EINTERNAL {
		t.Error("plain errors must be internal")
	}
}

type errSecret struct{}

func (errSecret) Error() string { return "password=hunter2" }
