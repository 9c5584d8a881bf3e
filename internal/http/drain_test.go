package http

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDrainer(t *testing.T) {
	d := NewDrainer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	serve := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		d.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	for _, path := range []string{"/readyz", "/v1/permissions/keys"} {
		if rec := serve(path); rec.Code != http.StatusOK || rec.Header().Get("Connection") != "" {
			t.Errorf("before draining, %s: %d Connection %q", path, rec.Code, rec.Header().Get("Connection"))
		}
	}
	d.Start()
	rec := serve("/readyz")
	if rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) != `{"status":"draining"}` {
		t.Errorf("draining /readyz: %d %s; want 503 draining", rec.Code, rec.Body)
	}
	for _, path := range []string{"/readyz", "/v1/permissions/keys"} {
		if got := serve(path).Header().Get("Connection"); got != "close" {
			t.Errorf("draining %s: Connection %q; want close", path, got)
		}
	}
	if rec := serve("/v1/permissions/keys"); rec.Code != http.StatusOK {
		t.Errorf("draining: other routes answered %d; want them served", rec.Code)
	}
}
