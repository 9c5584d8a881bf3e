package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scailabs/authzd/client"
)

// MustClient returns a client of srv with fast retries, so that tests do not wait. clientcontract repeats it:
// it cannot import this module's tests.
func MustClient(tb testing.TB, srv *httptest.Server, opts ...client.Option) *client.Client {
	tb.Helper()
	opts = append([]client.Option{client.WithRetry(3, time.Millisecond, 5*time.Millisecond)}, opts...)
	c, err := client.New(srv.URL, "secret", opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// writeError answers like authzd does.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", "req-1")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
}

func TestNew(t *testing.T) {
	tests := []struct {
		name, url, token string
		opts             []client.Option
		wantErr          bool
	}{
		{"OK", "http://authzd:8080", "t", nil, false},
		{"OKPrefix", "https://gw.example/authz/", "t", nil, false},
		{"ErrScheme", "ftp://authzd", "t", nil, true},
		{"ErrNoHost", "http://", "t", nil, true},
		{"ErrRelative", "authzd:8080", "t", nil, true},
		{"ErrQuery", "http://authzd?x=1", "t", nil, true},
		{"ErrNoToken", "http://authzd", "", nil, true},
		{"ErrAttempts", "http://authzd", "t", []client.Option{client.WithRetry(0, 0, 0)}, true},
		{"ErrBackoff", "http://authzd", "t", []client.Option{client.WithRetry(2, time.Second, time.Millisecond)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.New(tt.url, tt.token, tt.opts...)
			if got := err != nil; got != tt.wantErr {
				t.Errorf("err = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

func TestHasModulePermission(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		var got map[string]any
		var header http.Header
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			header = r.Header.Clone()
			if r.Method != http.MethodPost || r.URL.Path != "/v1/permissions/check" {
				t.Errorf("request %s %s", r.Method, r.URL.Path)
			}
			json.NewDecoder(r.Body).Decode(&got)
			io.WriteString(w, `{"allowed":true,"checked_at":"zt1","decision_id":"d1"}`)
		}))
		defer srv.Close()
		c := MustClient(t, srv, client.WithActor("op"))

		d, err := c.HasModulePermission(context.Background(), "t1", "sa:bot", "scaibunker:execute",
			client.WithResource("bunker", "b1"), client.WithAction("bunker.exec"), client.WithConsistencyToken("zt0"))
		if err != nil {
			t.Fatal(err)
		}
		if want := (client.Decision{Allowed: true, CheckedAt: "zt1", DecisionID: "d1"}); d != want {
			t.Errorf("decision = %+v, want %+v", d, want)
		}
		want := map[string]any{
			"tenant_id": "t1", "user_id": "sa:bot", "permission": "scaibunker:execute",
			"resource":          map[string]any{"type": "bunker", "id": "b1"},
			"action":            "bunker.exec",
			"consistency_token": "zt0",
		}
		if !jsonEqual(got, want) {
			t.Errorf("body = %v, want %v", got, want)
		}
		for k, v := range map[string]string{
			"Authorization":   "Bearer secret",
			"Content-Type":    "application/json",
			"X-Actor-User-Id": "op",
		} {
			if header.Get(k) != v {
				t.Errorf("header %s = %q, want %q", k, header.Get(k), v)
			}
		}
	})

	t.Run("OmitsOptional", func(t *testing.T) {
		var raw []byte
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, _ = io.ReadAll(r.Body)
			io.WriteString(w, `{"allowed":false,"checked_at":"zt1","decision_id":"d1"}`)
		}))
		defer srv.Close()
		d, err := MustClient(t, srv).HasModulePermission(context.Background(), "t1", "alice", "scaibunker:create")
		if err != nil || d.Allowed {
			t.Fatalf("decision = %+v, %v; want denied", d, err)
		}
		if want := `{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create"}`; string(raw) != want {
			t.Errorf("body = %s, want %s", raw, want)
		}
	})

	// An error is never a yes, whatever else the answer says.
	t.Run("ErrorIsDenied", func(t *testing.T) {
		for _, status := range []int{400, 401, 403, 500, 503} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
				io.WriteString(w, `{"allowed":true,"checked_at":"zt1","decision_id":"d1"}`)
			}))
			d, err := MustClient(t, srv).HasModulePermission(context.Background(), "t1", "alice", "scaibunker:create")
			srv.Close()
			if err == nil || d.Allowed || d != (client.Decision{}) {
				t.Errorf("status %d: decision = %+v, err = %v; want zero decision and an error", status, d, err)
			}
		}
	})

	t.Run("ErrBadJSON", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"allowed":tru`)
		}))
		defer srv.Close()
		d, err := MustClient(t, srv).HasModulePermission(context.Background(), "t1", "alice", "scaibunker:create")
		if err == nil || d.Allowed {
			t.Errorf("decision = %+v, err = %v; want an error", d, err)
		}
	})
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		want     client.Error
		is       func(error) bool
		attempts int32
	}{
		{"NotFound", 404, `{"error":{"code":"not_found","message":"no tenant t1"}}`,
			client.Error{Status: 404, Code: "not_found", Message: "no tenant t1", RequestID: "req-1"}, client.IsNotFound, 1},
		{"Invalid", 400, `{"error":{"code":"invalid","message":"bad key"}}`,
			client.Error{Status: 400, Code: "invalid", Message: "bad key", RequestID: "req-1"}, client.IsInvalid, 1},
		{"Conflict", 409, `{"error":{"code":"conflict","message":"tenants remain"}}`,
			client.Error{Status: 409, Code: "conflict", Message: "tenants remain", RequestID: "req-1"}, client.IsConflict, 1},
		{"Unauthorized", 401, `{"error":{"code":"unauthorized","message":"unknown token"}}`,
			client.Error{Status: 401, Code: "unauthorized", Message: "unknown token", RequestID: "req-1"}, client.IsUnauthorized, 1},
		{"Forbidden", 403, `{"error":{"code":"forbidden","message":"needs provision"}}`,
			client.Error{Status: 403, Code: "forbidden", Message: "needs provision", RequestID: "req-1"}, client.IsForbidden, 1},
		{"Unavailable", 503, `{"error":{"code":"unavailable","message":"spicedb"}}`,
			client.Error{Status: 503, Code: "unavailable", Message: "spicedb", RequestID: "req-1"}, client.IsUnavailable, 3},
		{"ProxyHTML", 502, `<html>bad gateway</html>`,
			client.Error{Status: 502, Code: "unavailable", Message: "Bad Gateway", RequestID: "req-1"}, client.IsUnavailable, 3},
		{"RequestIDFromBody", 409, `{"error":{"code":"conflict","message":"x","request_id":"req-1"}}`,
			client.Error{Status: 409, Code: "conflict", Message: "x", RequestID: "req-1"}, client.IsConflict, 1},
		{"Internal", 500, `{"error":{"code":"internal","message":"internal error"}}`,
			client.Error{Status: 500, Code: "internal", Message: "internal error", RequestID: "req-1"}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				if !strings.Contains(tt.body, "request_id") {
					w.Header().Set("X-Request-Id", "req-1")
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			_, err := MustClient(t, srv).PutTenant(context.Background(), "t1", "p1")
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *client.Error", err, err)
			}
			if *e != tt.want {
				t.Errorf("error = %+v, want %+v", *e, tt.want)
			}
			if tt.is != nil && !tt.is(err) {
				t.Errorf("helper says no to %v", err)
			}
			if got := n.Load(); got != tt.attempts {
				t.Errorf("attempts = %d, want %d", got, tt.attempts)
			}
		})
	}
	t.Run("Message", func(t *testing.T) {
		e := &client.Error{Status: 404, Code: "not_found", Message: "no tenant t1", RequestID: "r9"}
		if got, want := e.Error(), "authzd: 404 not_found: no tenant t1 (request id r9)"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
		if client.IsNotFound(errors.New("x")) || client.ErrorCode(nil) != "" {
			t.Error("helpers say yes to a non-*Error")
		}
		if !client.IsNotFound(fmt.Errorf("wrapped: %w", e)) {
			t.Error("IsNotFound misses a wrapped *Error")
		}
	})
}

func TestRetry(t *testing.T) {
	// flaky answers status for the first fails requests, then succeeds.
	flaky := func(fails int32, status int, ok string) (*httptest.Server, *atomic.Int32) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) <= fails {
				writeError(w, status, "unavailable", "try later")
				return
			}
			if r.Method == http.MethodPost && r.URL.Path == "/v1/tokens" {
				w.WriteHeader(http.StatusCreated)
			}
			io.WriteString(w, ok)
		}))
		return srv, &n
	}

	tests := []struct {
		name         string
		status       int
		fails        int32
		call         func(*client.Client) error
		wantErr      bool
		wantAttempts int32
	}{
		{"Check503", 503, 2, checkCall, false, 3},
		{"Check429", 429, 1, checkCall, false, 2},
		{"Check502", 502, 1, checkCall, false, 2},
		{"Check504", 504, 1, checkCall, false, 2},
		{"CheckGivesUp", 503, 5, checkCall, true, 3},
		{"CheckNo400", 400, 1, checkCall, true, 1},
		{"CheckNo500", 500, 1, checkCall, true, 1},
		{"Put503", 503, 1, putCall, false, 2},
		{"Delete503", 503, 1, deleteCall, false, 2},
		{"Get503", 503, 1, getCall, false, 2},
		{"Bulk503", 503, 1, bulkCall, false, 2},
		{"CreateTokenNo503", 503, 1, createTokenCall, true, 1},
		{"CreateTokenNo429", 429, 1, createTokenCall, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := flaky(tt.fails, tt.status, okBody)
			defer srv.Close()
			err := tt.call(MustClient(t, srv))
			if got := err != nil; got != tt.wantErr {
				t.Errorf("err = %v, want error: %v", err, tt.wantErr)
			}
			if got := n.Load(); got != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
			}
		})
	}

	// A network error after the request went out is retried only when repeating is safe;
	// one before the connection opened is always retried.
	t.Run("NetworkErrors", func(t *testing.T) {
		tests := []struct {
			name         string
			fail         error
			call         func(*client.Client) error
			wantErr      bool
			wantAttempts int32
		}{
			{"CheckEOF", io.ErrUnexpectedEOF, checkCall, false, 2},
			{"PutEOF", io.ErrUnexpectedEOF, putCall, false, 2},
			{"CreateTokenEOF", io.ErrUnexpectedEOF, createTokenCall, true, 1},
			{"CreateTokenDial", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, createTokenCall, false, 2},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				srv, served := flaky(0, 200, okBody)
				defer srv.Close()
				ft := &failingTransport{fail: tt.fail, fails: 1, next: http.DefaultTransport}
				err := tt.call(MustClient(t, srv, client.WithHTTPClient(&http.Client{Transport: ft})))
				if got := err != nil; got != tt.wantErr {
					t.Errorf("err = %v, want error: %v", err, tt.wantErr)
				}
				if got := ft.n.Load(); got != tt.wantAttempts {
					t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
				}
				if got, want := served.Load(), tt.wantAttempts-1; got != want {
					t.Errorf("requests served = %d, want %d", got, want)
				}
			})
		}
	})

	t.Run("RetryAfterPastDeadline", func(t *testing.T) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Retry-After", "20")
			writeError(w, 503, "unavailable", "busy")
		}))
		defer srv.Close()
		start := time.Now()
		err := checkCall(MustClient(t, srv, client.WithTimeout(time.Second)))
		if !client.IsUnavailable(err) {
			t.Errorf("err = %v, want unavailable", err)
		}
		if n.Load() != 1 || time.Since(start) > 500*time.Millisecond {
			t.Errorf("%d attempts in %v; want 1 and an early return, since the wait would pass the deadline", n.Load(), time.Since(start))
		}
	})
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	t.Run("Option", func(t *testing.T) {
		start := time.Now()
		d, err := MustClient(t, srv, client.WithTimeout(100*time.Millisecond)).
			HasModulePermission(context.Background(), "t1", "alice", "scaibunker:create")
		if !errors.Is(err, context.DeadlineExceeded) || d.Allowed {
			t.Errorf("decision = %+v, err = %v; want deadline exceeded", d, err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("took %v; the timeout is 100ms and covers retries", el)
		}
	})
	t.Run("Context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := MustClient(t, srv).HasModulePermission(ctx, "t1", "alice", "scaibunker:create")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want deadline exceeded", err)
		}
	})
}

func TestCheckBulk(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Items []client.CheckRequest `json:"items"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		sizes = append(sizes, len(body.Items))
		mu.Unlock()
		var res struct {
			Results []client.Decision `json:"results"`
		}
		for _, it := range body.Items {
			// The user id carries the item's index; echo it back to check the order.
			res.Results = append(res.Results, client.Decision{Allowed: it.Permission == "m:yes", DecisionID: it.UserID})
		}
		json.NewEncoder(w).Encode(res)
	}))
	defer srv.Close()

	var reqs []client.CheckRequest
	for i := range 250 {
		perm := "m:no"
		if i%3 == 0 {
			perm = "m:yes"
		}
		reqs = append(reqs, client.CheckRequest{TenantID: "t1", UserID: fmt.Sprint(i), Permission: perm})
	}
	got, err := MustClient(t, srv).CheckBulk(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Errorf("batch sizes = %v, want [100 100 50]", sizes)
	}
	if len(got) != len(reqs) {
		t.Fatalf("%d decisions for %d requests", len(got), len(reqs))
	}
	for i, d := range got {
		if d.DecisionID != fmt.Sprint(i) || d.Allowed != (i%3 == 0) {
			t.Fatalf("decision %d = %+v, out of order", i, d)
		}
	}

	t.Run("ItemError", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"results":[{"allowed":true,"checked_at":"zt","decision_id":"d1"},`+
				`{"allowed":true,"checked_at":"","decision_id":"","error":{"code":"unavailable","message":"spicedb"}}]}`)
		}))
		defer srv.Close()
		got, err := MustClient(t, srv).CheckBulk(context.Background(), reqs[:2])
		if err != nil {
			t.Fatal(err)
		}
		if !got[0].Allowed || got[0].Err != nil {
			t.Errorf("first = %+v, want allowed", got[0])
		}
		if got[1].Allowed || !client.IsUnavailable(got[1].Err) {
			t.Errorf("second = %+v, want denied with an unavailable error", got[1])
		}
	})

	t.Run("Empty", func(t *testing.T) {
		sizes = nil
		got, err := MustClient(t, srv).CheckBulk(context.Background(), nil)
		if err != nil || len(got) != 0 || len(sizes) != 0 {
			t.Errorf("got %v, %v after %d requests; want nothing and no request", got, err, len(sizes))
		}
	})
}

func TestEffectivePermissions(t *testing.T) {
	var gotURL string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotURL = r.URL.RequestURI()
		io.WriteString(w, `{"permissions":["scaibunker:create","scaibunker:execute"],"checked_at":"zt","decision_id":"d"}`)
	}))
	defer srv.Close()
	c := MustClient(t, srv)

	got, err := c.EffectivePermissions(context.Background(), "t1", "sa:bot", client.WithConsistencyToken("zt0"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"scaibunker:create", "scaibunker:execute"}; !slices.Equal(got, want) {
		t.Errorf("permissions = %v, want %v", got, want)
	}
	if want := "/v1/tenants/t1/users/sa:bot/permissions?consistency_token=zt0"; gotURL != want {
		t.Errorf("url = %s, want %s", gotURL, want)
	}
	if _, err := c.EffectivePermissions(context.Background(), "t1", "alice", client.WithResource("bunker", "b1")); err == nil {
		t.Error("WithResource accepted; want an error")
	}
	if _, err := c.EffectivePermissions(context.Background(), "", "alice"); err == nil {
		t.Error("empty tenant accepted; want an error")
	}
}

func TestAuditEvents(t *testing.T) {
	pages := map[string]string{
		"":   `{"events":[{"id":"1","occurred_at":"2026-05-01T10:00:00Z","module":"scaibunker","decision":"allowed"},{"id":"2","occurred_at":"2026-05-01T10:00:01Z","decision":"denied"}],"next_cursor":"c1"}`,
		"c1": `{"events":[{"id":"3","occurred_at":"2026-05-01T10:00:02Z"}],"next_cursor":"c2"}`,
		"c2": `{"events":[],"next_cursor":""}`,
	}
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		p, ok := pages[r.URL.Query().Get("cursor")]
		if !ok {
			writeError(w, 400, "invalid", "bad cursor")
			return
		}
		io.WriteString(w, p)
	}))
	defer srv.Close()
	c := MustClient(t, srv)
	q := client.AuditQuery{
		Module: "scaibunker", TenantID: "t1", ActorUserID: "alice", Decision: client.DecisionDenied,
		Since: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC), Limit: 2,
	}

	t.Run("FollowsCursors", func(t *testing.T) {
		queries = nil
		var ids []string
		for ev, err := range c.AuditEvents(context.Background(), q) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, ev.ID)
		}
		if want := []string{"1", "2", "3"}; !slices.Equal(ids, want) {
			t.Errorf("ids = %v, want %v", ids, want)
		}
		if len(queries) != 3 {
			t.Fatalf("%d requests, want 3", len(queries))
		}
		want := "actor_user_id=alice&decision=denied&limit=2&module=scaibunker&since=2026-05-01T00%3A00%3A00Z&tenant_id=t1&until=2026-05-02T00%3A00%3A00Z"
		if queries[0] != want {
			t.Errorf("query = %s, want %s", queries[0], want)
		}
		if !strings.Contains(queries[1], "cursor=c1") || !strings.Contains(queries[1], "module=scaibunker") {
			t.Errorf("second query = %s, want the filters and cursor=c1", queries[1])
		}
	})

	t.Run("StopsOnBreak", func(t *testing.T) {
		queries = nil
		for range c.AuditEvents(context.Background(), q) {
			break
		}
		if len(queries) != 1 {
			t.Errorf("%d requests after break on the first event, want 1", len(queries))
		}
	})

	t.Run("YieldsErrorOnce", func(t *testing.T) {
		q := q
		q.Cursor = "bogus"
		var errs int
		for _, err := range c.AuditEvents(context.Background(), q) {
			if err == nil {
				t.Fatal("event yielded, want an error")
			}
			if !client.IsInvalid(err) {
				t.Errorf("err = %v, want invalid", err)
			}
			errs++
		}
		if errs != 1 {
			t.Errorf("%d errors yielded, want 1", errs)
		}
	})
}

func TestActor(t *testing.T) {
	var actors []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actors = append(actors, r.Header.Get("X-Actor-User-Id"))
		io.WriteString(w, `{"zed_token":"zt"}`)
	}))
	defer srv.Close()
	c := MustClient(t, srv)
	ctx := context.Background()
	c.PutPartner(ctx, "p1")
	c.WithActor("alice").PutPartner(ctx, "p1")
	c.PutPartner(ctx, "p1")
	if want := []string{"", "alice", ""}; !slices.Equal(actors, want) {
		t.Errorf("actors = %q, want %q (WithActor must not change the original)", actors, want)
	}
}

// okBody satisfies every decoder of the client.
const okBody = `{"zed_token":"zt","allowed":true,"checked_at":"zt","decision_id":"d","results":[{"allowed":true}],"permissions":[],"keys":[],"events":[],"next_cursor":"","tokens":[],"id":"tok1","name":"n","scopes":["check"],"token":"s","created_at":"2026-05-01T00:00:00Z","role_id":"ops","tenant_id":"t1","module_permissions":[]}`

func checkCall(c *client.Client) error {
	_, err := c.HasModulePermission(context.Background(), "t1", "alice", "scaibunker:create")
	return err
}

func bulkCall(c *client.Client) error {
	_, err := c.CheckBulk(context.Background(), []client.CheckRequest{{TenantID: "t1", UserID: "alice", Permission: "m:k"}})
	return err
}

func putCall(c *client.Client) error {
	_, err := c.PutTenant(context.Background(), "t1", "p1")
	return err
}

func deleteCall(c *client.Client) error {
	_, err := c.DeleteTenant(context.Background(), "t1")
	return err
}

func getCall(c *client.Client) error {
	_, err := c.GetRole(context.Background(), "t1", "ops")
	return err
}

func createTokenCall(c *client.Client) error {
	_, err := c.CreateToken(context.Background(), "n", client.ScopeCheck)
	return err
}

// failingTransport fails the first fails round trips with fail, then hands over to next.
type failingTransport struct {
	fail  error
	fails int32
	n     atomic.Int32
	next  http.RoundTripper
}

func (f *failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.n.Add(1) <= f.fails {
		return nil, f.fail
	}
	return f.next.RoundTrip(r)
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
