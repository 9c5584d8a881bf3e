package http

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/scailabs/authzd/internal/authz"
)

// FuzzDecode: any body is either one JSON object in the target's shape or a
// caller's error (400, or 413 over the limit) whose message is safe to show;
// never a panic, never an internal error.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create"}`,
		`{"tenant_id":7}`, `{"extra":1}`, `{"tenant_id":"t1"} {}`, `{"tenant_id":`, `[]`, `null`, `"x"`,
		`{"resource":{"type":"bunker","id":"b1"}}`, `{"resource":null}`, "{\"tenant_id\":\"\xff\"}",
		`{"tenant_id":"` + strings.Repeat("a", 200) + `"}`} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, emptyOK bool) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 128)
		var b checkBody
		err := decode(r, &b, emptyOK)
		if err == nil {
			return
		}
		switch code := authz.ErrorCode(err); code {
		case authz.EINVALID, authz.ETOOLARGE:
		default:
			t.Fatalf("decode(%q): code %q, want invalid or too_large: %v", body, code, err)
		}
		if msg := authz.ErrorMessage(err); msg == "" || !utf8.ValidString(msg) {
			t.Fatalf("decode(%q): message %q", body, msg)
		}
	})
}

// FuzzCheckBody: whatever the body, POST /v1/permissions/check answers 200
// (and then audits), 400 or 413; bad input never reaches the graph.
func FuzzCheckBody(f *testing.F) {
	for _, s := range []string{`{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create"}`,
		`{"tenant_id":"t1","user_id":"sa:bot","permission":"scaibunker:execute","resource":{"type":"bunker","id":"b1"}}`,
		`{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create","consistency_token":"x"}`,
		`{"tenant_id":"t/1","user_id":"alice","permission":"scaibunker:create"}`, `{}`, ``, `{"resource":{}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		fx := newFixture(t)
		a := fx.do(t, "POST", "/v1/permissions/check", body)
		switch a.status {
		case http.StatusOK:
			if len(fx.audit.events) != 1 {
				t.Fatalf("200 with %d audit rows: %q", len(fx.audit.events), body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if fx.check.calls != 0 || len(fx.audit.events) != 0 {
				t.Fatalf("%d, yet it reached the graph or the audit: %q", a.status, body)
			}
		default:
			t.Fatalf("status %d for %q: %s", a.status, body, a.raw)
		}
	})
}

// FuzzCursor: a cursor that decodes is one this server could have issued
// (encoding it again gives the same text) and names a time Postgres can
// compare with (so a forged cursor is a 400, not a database error); issued
// cursors decode to what was encoded.
func FuzzCursor(f *testing.F) {
	f.Add("", int64(0), int64(0))
	f.Add(encodeCursor(&authz.Cursor{OccurredAt: time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC), ID: 42}), int64(1777636800123456), int64(42))
	f.Add("MTcwMDAwMDAwMDAwMDAwMC4x", int64(-1), int64(-1))
	f.Add("LTkyMjMzNzIwMzY4NTQ3NzU4MDguMQ", int64(-9223372036854775808), int64(9223372036854775807))
	f.Add("KzEuMQ", int64(1), int64(1))
	f.Fuzz(func(t *testing.T, s string, us, id int64) {
		if c, err := decodeCursor(s); err == nil {
			if got := encodeCursor(c); got != s {
				t.Fatalf("decodeCursor(%q) = %+v, which encodes as %q", s, c, got)
			}
			if y := c.OccurredAt.Year(); y < minCursorYear || y > maxCursorYear {
				t.Fatalf("decodeCursor(%q): year %d is outside %d..%d", s, y, minCursorYear, maxCursorYear)
			}
		} else if authz.ErrorCode(err) != authz.EINVALID {
			t.Fatalf("decodeCursor(%q): %v", s, err)
		}
		in := &authz.Cursor{OccurredAt: time.UnixMicro(us).UTC(), ID: id}
		if y := in.OccurredAt.Year(); y < minCursorYear || y > maxCursorYear {
			return // no audit row is ever written at such a time
		}
		out, err := decodeCursor(encodeCursor(in))
		if err != nil || !out.OccurredAt.Equal(in.OccurredAt) || out.ID != in.ID {
			t.Fatalf("cursor %+v came back as %+v, %v", in, out, err)
		}
	})
}
