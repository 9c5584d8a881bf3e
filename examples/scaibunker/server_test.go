package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scailabs/authzd/client"
)

// fakeAuthz allows tenant t1's users the create key, and the execute key on the
// bunkers they own. down makes every check fail.
type fakeAuthz struct {
	owners map[string]string
	down   bool
}

func (f *fakeAuthz) HasModulePermission(ctx context.Context, tenantID, userID, key string, opts ...client.CheckOption) (client.Decision, error) {
	if f.down {
		return client.Decision{}, errors.New("connection refused")
	}
	var req client.CheckRequest
	for _, o := range opts {
		o(&req)
	}
	allowed := tenantID == "t1"
	if req.Resource != nil {
		allowed = allowed && f.owners[req.Resource.ID] == userID
	}
	return client.Decision{Allowed: allowed, DecisionID: "d"}, nil
}

func (f *fakeAuthz) PutResource(ctx context.Context, tenantID, resourceType, resourceID, ownerID string) (string, error) {
	f.owners[resourceID] = ownerID
	return "zt", nil
}

func TestServer(t *testing.T) {
	az := &fakeAuthz{owners: map[string]string{}}
	srv := NewServer(az, slog.New(slog.NewTextHandler(io.Discard, nil)))
	do := func(method, path, user, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if user != "" {
			req.Header.Set("X-Tenant-Id", "t1")
			req.Header.Set("X-User-Id", user)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}

	rec := do("POST", "/bunkers", "alice", "")
	if rec.Code != http.StatusCreated || rec.Header().Get(consistencyHeader) != "zt" {
		t.Fatalf("create: %d %s, token %q", rec.Code, rec.Body, rec.Header().Get(consistencyHeader))
	}
	var b Bunker
	json.Unmarshal(rec.Body.Bytes(), &b)

	for _, tc := range []struct {
		name, method, path, user, body string
		want                           int
	}{
		{"OwnerReads", "GET", "/bunkers/" + b.ID, "alice", "", http.StatusOK},
		{"OwnerExecs", "POST", "/bunkers/" + b.ID + "/exec", "alice", `{"command":["true"]}`, http.StatusOK},
		{"OtherDenied", "POST", "/bunkers/" + b.ID + "/exec", "bob", `{"command":["true"]}`, http.StatusForbidden},
		{"NoIdentity", "POST", "/bunkers", "", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rec := do(tc.method, tc.path, tc.user, tc.body); rec.Code != tc.want {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tc.want, rec.Body)
			}
		})
	}
	t.Run("AuthzDown", func(t *testing.T) {
		az.down = true
		defer func() { az.down = false }()
		if rec := do("POST", "/bunkers/"+b.ID+"/exec", "alice", `{"command":["true"]}`); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("status = %d, want 503", rec.Code)
		}
	})
}
