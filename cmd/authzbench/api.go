package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// apiClient calls one authzd over HTTP with keep-alive connections enough
// for every concurrent worker, so no request pays for a new connection.
type apiClient struct {
	base           string
	http           *http.Client
	adminToken     string
	checkToken     string
	provisionToken string
	auditToken     string
	srv            *authzdServer // the authzd process behind base
}

func newHTTPClient(maxConc int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        maxConc + 16,
			MaxIdleConnsPerHost: maxConc + 16,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// send makes one request and reads the whole answer into buf; a status other than 200 is an error.
func (c *apiClient) send(ctx context.Context, method, path, token string, body []byte, buf *bytes.Buffer) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return &statusError{status: resp.StatusCode, msg: fmt.Sprintf("%s %s: %d %s", method, path, resp.StatusCode, truncate(buf.String(), 300))}
	}
	return nil
}

// statusError is an answer other than 200 or 201.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// do is send for setup calls, returning a copy of the answer.
func (c *apiClient) do(ctx context.Context, method, path, token, body string) ([]byte, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	if err := c.send(ctx, method, path, token, b, buf); err != nil {
		return nil, err
	}
	return bytes.Clone(buf.Bytes()), nil
}

// createToken makes a service token with the given scopes, as a module's deployment would hold.
func (c *apiClient) createToken(ctx context.Context, name string, scopes ...string) (string, error) {
	sc, _ := json.Marshal(scopes)
	b, err := c.do(ctx, "POST", "/v1/tokens", c.adminToken, fmt.Sprintf(`{"name":%q,"scopes":%s}`, name, sc))
	if err != nil {
		return "", err
	}
	var t struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &t); err != nil || t.Token == "" {
		return "", fmt.Errorf("create token: unexpected answer %s", truncate(string(b), 200))
	}
	return t.Token, nil
}

var allowedTrue = []byte(`"allowed":true`)

func checkBody(c checkCase) []byte {
	return fmt.Appendf(nil, `{"tenant_id":%q,"user_id":%q,"permission":%q}`, c.tenant, c.user, c.key.String())
}

// facadeCheck is one POST /v1/permissions/check of a check drawn from the mix.
func (c *apiClient) facadeCheck(draw func(*rand.Rand) checkCase) op {
	return func(ctx context.Context, rng *rand.Rand) (outcome, error) {
		cc := draw(rng)
		buf := bufPool.Get().(*bytes.Buffer)
		defer bufPool.Put(buf)
		if err := c.send(ctx, "POST", "/v1/permissions/check", c.checkToken, checkBody(cc), buf); err != nil {
			return outcome{}, err
		}
		return judge(cc, bytes.Contains(buf.Bytes(), allowedTrue)), nil
	}
}

// directCheck is the same kind of check sent straight to SpiceDB's CheckPermission.
func directCheck(client v1.PermissionsServiceClient, draw func(*rand.Rand) checkCase) op {
	return func(ctx context.Context, rng *rand.Rand) (outcome, error) {
		cc := draw(rng)
		resp, err := client.CheckPermission(ctx, directRequest(cc))
		if err != nil {
			return outcome{}, err
		}
		o := judge(cc, resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION)
		o.answers = 0 // SpiceDB audits nothing
		return o, nil
	}
}

func judge(c checkCase, allowed bool) outcome {
	o := outcome{answers: 1}
	if allowed {
		o.allowed = 1
	}
	if allowed != c.allowed {
		o.wrong = 1
	}
	return o
}

// effective is one GET /v1/tenants/{t}/users/{u}/permissions: all keys in one call.
func (c *apiClient) effective(cases []effectiveCase) op {
	type answer struct {
		Permissions []string `json:"permissions"`
	}
	return func(ctx context.Context, rng *rand.Rand) (outcome, error) {
		e := cases[rng.IntN(len(cases))]
		buf := bufPool.Get().(*bytes.Buffer)
		defer bufPool.Put(buf)
		if err := c.send(ctx, "GET", "/v1/tenants/"+e.tenant+"/users/"+e.user+"/permissions", c.checkToken, nil, buf); err != nil {
			return outcome{}, err
		}
		var a answer
		if err := json.Unmarshal(buf.Bytes(), &a); err != nil {
			return outcome{}, err
		}
		o := outcome{answers: 1, allowed: len(a.Permissions)}
		if len(a.Permissions) != e.held {
			o.wrong = 1
		}
		return o, nil
	}
}

// singles asks the same question as effective with one POST check per key, one after the other.
func (c *apiClient) singles(cases []effectiveCase, mixOf func(effectiveCase) []checkCase) op {
	return func(ctx context.Context, rng *rand.Rand) (outcome, error) {
		var total outcome
		buf := bufPool.Get().(*bytes.Buffer)
		defer bufPool.Put(buf)
		for _, cc := range mixOf(cases[rng.IntN(len(cases))]) {
			if err := c.send(ctx, "POST", "/v1/permissions/check", c.checkToken, checkBody(cc), buf); err != nil {
				return total, err
			}
			o := judge(cc, bytes.Contains(buf.Bytes(), allowedTrue))
			total.answers, total.allowed, total.wrong = total.answers+o.answers, total.allowed+o.allowed, total.wrong+o.wrong
		}
		return total, nil
	}
}

// auditQuery is one GET /v1/audit/events page of 100 rows for a random
// module since a random day of the seeded window (optionally for one tenant).
func (c *apiClient) auditQuery(seed auditSeed, withTenant bool) op {
	return func(ctx context.Context, rng *rand.Rand) (outcome, error) {
		q := url.Values{}
		q.Set("module", seed.modules[rng.IntN(len(seed.modules))].name)
		// Since a day in the first 80% of the window, so most pages are full.
		day := seed.from.Add(time.Duration(rng.Int64N(int64(seed.window) * 8 / 10))).Truncate(24 * time.Hour)
		q.Set("since", day.Format(time.DateOnly))
		q.Set("limit", "100")
		if withTenant {
			q.Set("tenant_id", seed.tenant(rng))
		}
		buf := bufPool.Get().(*bytes.Buffer)
		defer bufPool.Put(buf)
		if err := c.send(ctx, "GET", "/v1/audit/events?"+q.Encode(), c.auditToken, nil, buf); err != nil {
			return outcome{}, err
		}
		// Count rows without decoding them; a page is never over the limit.
		rows := bytes.Count(buf.Bytes(), []byte(`"decision_id"`))
		o := outcome{allowed: rows}
		if rows > 100 {
			o.wrong = 1
		}
		return o, nil
	}
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
