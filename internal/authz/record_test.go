package authz

import (
	"errors"
	"io"
	"strings"
	"testing"
)

var testRules = RecordRules{ResourceTypes: []string{"bunker", "binding"}}

func decodeAll(t *testing.T, doc string, rules RecordRules) ([]Record, error) {
	t.Helper()
	d := NewRecordDecoder(strings.NewReader(doc), rules)
	var out []Record
	for {
		r, err := d.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}

func TestRecordDecoderRoundTrip(t *testing.T) {
	lines := []string{
		`{"kind":"partner","partner_id":"p1"}`,
		`{"kind":"super_admin","user_id":"sa:bot"}`,
		`{"kind":"partner_admin","partner_id":"p1","user_id":"alice"}`,
		`{"kind":"tenant","tenant_id":"t1","partner_id":"p1"}`,
		`{"kind":"role","tenant_id":"t1","role_id":"ops","name":"Ops \"team\" ü","module_permissions":["scaibunker:create","a:b"]}`,
		`{"kind":"role","tenant_id":"t1","role_id":"empty","name":"Empty","module_permissions":[]}`,
		`{"kind":"member","tenant_id":"t1","role_id":"tenant_admin","user_id":"bob"}`,
		`{"kind":"member","tenant_id":"t1","role_id":"ops","user_id":"sa:ci"}`,
		`{"kind":"resource","tenant_id":"t1","resource":{"type":"bunker","id":"b1"},"owner_id":"bob"}`,
	}
	recs, err := decodeAll(t, strings.Join(lines, "\n")+"\n\n", testRules)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(lines) {
		t.Fatalf("got %d records, want %d", len(recs), len(lines))
	}
	for i, r := range recs {
		if r.Line != i+1 {
			t.Errorf("record %d: line %d", i, r.Line)
		}
		got := string(r.AppendJSON(nil))
		want := lines[i]
		if i == 4 { // keys come out sorted
			want = `{"kind":"role","tenant_id":"t1","role_id":"ops","name":"Ops \"team\" ü","module_permissions":["a:b","scaibunker:create"]}`
		}
		if got != want {
			t.Errorf("line %d: got %s, want %s", i+1, got, want)
		}
	}
}

func TestRecordDecoderRejects(t *testing.T) {
	long := `{"kind":"partner","partner_id":"` + strings.Repeat("a", MaxRecordLine) + `"}`
	for _, tc := range []struct {
		name, line, msg string
	}{
		{"UnknownKind", `{"kind":"group","partner_id":"p"}`, "unknown kind"},
		{"NoKind", `{"partner_id":"p"}`, "kind is required"},
		{"UnknownField", `{"kind":"partner","partner_id":"p","x":1}`, `unknown field "x"`},
		{"FieldOfOtherKind", `{"kind":"partner","partner_id":"p","tenant_id":"t"}`, `"tenant_id" is not a field of kind partner`},
		{"Op", `{"op":"put","kind":"partner","partner_id":"p"}`, `unknown field "op"`},
		{"BadID", `{"kind":"partner","partner_id":"a/b"}`, "may only contain"},
		{"MissingID", `{"kind":"tenant","tenant_id":"t"}`, "partner_id is required"},
		{"BadJSON", `{"kind":"partner",`, "JSON"},
		{"NotObject", `["partner"]`, "must be a JSON object"},
		{"Trailing", `{"kind":"partner","partner_id":"p"} {}`, "data after"},
		{"WrongType", `{"kind":"partner","partner_id":1}`, `"partner_id" must be string`},
		{"BuiltinRoleRecord", `{"kind":"role","tenant_id":"t","role_id":"tenant_admin","name":"x","module_permissions":[]}`, "built-in role"},
		{"RoleNoKeys", `{"kind":"role","tenant_id":"t","role_id":"r","name":"x"}`, "module_permissions is required"},
		{"RoleNoName", `{"kind":"role","tenant_id":"t","role_id":"r","module_permissions":[]}`, "name is required"},
		{"BadKey", `{"kind":"role","tenant_id":"t","role_id":"r","name":"x","module_permissions":["Bad"]}`, "module_permissions[0]"},
		{"PlatformRoleMember", `{"kind":"member","tenant_id":"t","role_id":"super_admin","user_id":"u"}`, "not a tenant role"},
		{"UnknownType", `{"kind":"resource","tenant_id":"t","resource":{"type":"x","id":"r"},"owner_id":"u"}`, "unknown resource type"},
		{"ResourceField", `{"kind":"resource","tenant_id":"t","resource":{"type":"bunker","id":"r","x":1},"owner_id":"u"}`, `unknown field "x"`},
		{"LongLine", long, "over 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := `{"kind":"partner","partner_id":"ok"}` + "\n" + tc.line + "\n" + `{"kind":"partner","partner_id":"after"}`
			recs, err := decodeAll(t, doc, testRules)
			if err == nil {
				t.Fatalf("no error; records %v", recs)
			}
			if ErrorCode(err) != EINVALID || ErrorLine(err) != 2 || !strings.Contains(ErrorMessage(err), tc.msg) {
				t.Fatalf("got code %q line %d %q; want invalid, line 2, containing %q", ErrorCode(err), ErrorLine(err), ErrorMessage(err), tc.msg)
			}
		})
	}
}

func TestRecordDecoderOp(t *testing.T) {
	rules := testRules
	rules.AllowOp = true
	recs, err := decodeAll(t, `{"op":"delete","kind":"tenant","tenant_id":"t"}`+"\n"+
		`{"op":"put","kind":"tenant","tenant_id":"t","partner_id":"p"}`, rules)
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Op != OpDelete || recs[1].Op != OpPut || recs[1].PartnerID != "p" {
		t.Fatalf("got %+v", recs)
	}
	if got := string(recs[0].AppendJSON(nil)); got != `{"op":"delete","kind":"tenant","tenant_id":"t"}` {
		t.Fatalf("delete encodes as %s", got)
	}
	for _, bad := range []string{`{"kind":"tenant","tenant_id":"t","partner_id":"p"}`, `{"op":"patch","kind":"partner","partner_id":"p"}`,
		`{"op":"delete","kind":"tenant","tenant_id":"t","partner_id":"p"}`} {
		if _, err := decodeAll(t, bad, rules); ErrorCode(err) != EINVALID || ErrorLine(err) != 1 {
			t.Errorf("%s: got %v", bad, err)
		}
	}
}
