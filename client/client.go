package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/scailabs/authzd/client/tlsfiles"
)

// Defaults of a Client made by New.
const (
	DefaultTimeout     = 10 * time.Second // bounds one call, retries included
	DefaultMaxAttempts = 4                // one try and three retries
	DefaultMinBackoff  = 100 * time.Millisecond
	DefaultMaxBackoff  = 2 * time.Second
)

// maxResponseBytes caps how much of an answer the client reads. The largest answers
// (an audit page of 1000 events) are well under it.
const maxResponseBytes = 32 << 20

const userAgent = "authzd-client-go/1"

// Client talks to one authzd. It is safe for concurrent use; make one per process and
// share it, so that connections are reused.
type Client struct {
	baseURL string // scheme://host[/prefix], no trailing slash
	token   string
	hc      *http.Client
	timeout time.Duration
	retry   retryPolicy
	actor   string
	// tls holds the files of WithTLSFiles; tlsErr why they did not load.
	tls    *tlsfiles.Store
	tlsErr error
}

// Option configures a Client in New.
type Option func(*Client)

// WithHTTPClient makes the client send requests through hc instead of its own
// *http.Client with a tuned Transport. Per-call timeouts still come from WithTimeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithTLSFiles makes the client verify authzd's certificate against the CA
// certificates in caFile (the system's roots when empty) and, when certFile and
// keyFile are given, present that certificate (mutual TLS). The files are
// read again when they change, so a renewed certificate is used without a new
// Client. New fails when they do not load. WithHTTPClient overrides it.
func WithTLSFiles(caFile, certFile, keyFile string) Option {
	return func(c *Client) {
		c.tls, c.tlsErr = tlsfiles.Load(tlsfiles.Files{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}, tlsfiles.Options{})
	}
}

// WithTimeout bounds every call, retries included. Zero or less leaves only the caller's
// context to bound it.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = d }
}

// WithRetry sets how often a failed call that is safe to repeat is tried (maxAttempts,
// 1 to never retry) and the bounds of the exponential backoff between tries: the n-th
// retry waits a random duration in [0, min(maxDelay, minDelay*2^(n-1))].
func WithRetry(maxAttempts int, minDelay, maxDelay time.Duration) Option {
	return func(c *Client) { c.retry = retryPolicy{maxAttempts: maxAttempts, min: minDelay, max: maxDelay} }
}

// WithActor names the person on whose behalf the client acts. It is sent as
// X-Actor-User-Id and recorded with provisioning writes in the audit trail.
// See also (*Client).WithActor for one-off calls.
func WithActor(userID string) Option {
	return func(c *Client) { c.actor = userID }
}

// New returns a client of the authzd at baseURL ("http://authzd:8080") that
// authenticates with the API token.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("authzd client: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("authzd client: base URL %q must be http(s)://host[:port]", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("authzd client: base URL %q may not have a query or fragment", baseURL)
	}
	if token == "" {
		return nil, errors.New("authzd client: token is required")
	}
	c := &Client{
		baseURL: strings.TrimRight(u.String(), "/"),
		token:   token,
		timeout: DefaultTimeout,
		retry:   retryPolicy{maxAttempts: DefaultMaxAttempts, min: DefaultMinBackoff, max: DefaultMaxBackoff},
	}
	for _, opt := range opts {
		opt(c)
	}
	if c.tlsErr != nil {
		return nil, fmt.Errorf("authzd client: %w", c.tlsErr)
	}
	if c.hc == nil {
		c.hc = newHTTPClient(c.tls)
	}
	if c.retry.maxAttempts < 1 {
		return nil, fmt.Errorf("authzd client: max attempts is %d; it must be at least 1", c.retry.maxAttempts)
	}
	if c.retry.min < 0 || c.retry.max < c.retry.min {
		return nil, fmt.Errorf("authzd client: backoff bounds [%v, %v] are not 0 <= min <= max", c.retry.min, c.retry.max)
	}
	return c, nil
}

// WithActor returns a copy of c that sends X-Actor-User-Id: userID. The copy shares c's
// connections, so it is cheap to make one per request.
func (c *Client) WithActor(userID string) *Client {
	cc := *c
	cc.actor = userID
	return &cc
}

// newHTTPClient returns an http.Client whose Transport keeps enough idle connections
// per host for a busy module talking to one authzd. It has no Timeout of its own: each
// call's context carries the deadline.
func newHTTPClient(files *tlsfiles.Store) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if files != nil {
		// A TLS configuration made per connection uses the files as they are now.
		t.DialTLSContext = files.DialTLSContext("")
	}
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: t}
}

// call describes one API request.
type call struct {
	method string
	path   string     // escaped, from buildPath
	query  url.Values // may be nil
	body   any        // sent as JSON when not nil
	// idempotent marks calls that may be repeated when their answer was lost.
	idempotent bool
}

// get reads path (with query) into a T. A GET changes nothing, so it is
// retried like any idempotent call; on error the T is its zero value.
func get[T any](ctx context.Context, c *Client, path string, query url.Values) (T, error) {
	var v T
	if err := c.do(ctx, call{method: http.MethodGet, path: path, query: query, idempotent: true}, &v); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// do sends the call, retrying what may be retried, and decodes a 2xx answer into out
// (which may be nil).
func (c *Client) do(ctx context.Context, cl call, out any) error {
	var body []byte
	if cl.body != nil {
		var err error
		if body, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("authzd client: encode request: %w", err)
		}
	}
	u := c.baseURL + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}

	for attempt := 1; ; attempt++ {
		res := c.once(ctx, cl, u, body, out)
		if res.err == nil {
			return nil
		}
		if !res.retry || attempt >= c.retry.maxAttempts {
			return res.err
		}
		wait := max(c.retry.backoff(attempt), res.retryAfter)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return res.err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return res.err
		case <-t.C:
		}
	}
}

type result struct {
	err        error
	retry      bool
	retryAfter time.Duration
}

// once makes one attempt.
func (c *Client) once(ctx context.Context, cl call, u string, body []byte, out any) result {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u, rd)
	if err != nil {
		return result{err: fmt.Errorf("authzd client: %w", err)}
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.actor != "" {
		req.Header.Set("X-Actor-User-Id", c.actor)
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		// err is a *url.Error, which names the method and URL.
		err = fmt.Errorf("authzd: %w", err)
		if ctx.Err() != nil {
			return result{err: err}
		}
		// A request that never left cannot have been applied, so even a call that is not
		// idempotent may be sent again.
		if _, refused := tlsfiles.Refused(err); refused {
			return result{err: err} // the same certificates would be refused again
		}
		return result{err: err, retry: cl.idempotent || isDialError(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		err = fmt.Errorf("authzd %s %s: read answer: %w", cl.method, cl.path, err)
		return result{err: err, retry: cl.idempotent && ctx.Err() == nil}
	}

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil || len(bytes.TrimSpace(data)) == 0 {
			return result{}
		}
		if err := json.Unmarshal(data, out); err != nil {
			return result{err: fmt.Errorf("authzd %s %s: decode answer: %w", cl.method, cl.path, err)}
		}
		return result{}
	}
	e := decodeError(resp, data)
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return result{err: e, retry: cl.idempotent, retryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	}
	return result{err: e}
}

// isDialError reports whether err happened while opening the connection, before any
// byte of the request was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// buildPath fills the {placeholders} of tmpl, in order, with the escaped args. Empty
// args are refused: they would make a different route.
func buildPath(tmpl string, args ...string) (string, error) {
	var b strings.Builder
	rest := tmpl
	for _, arg := range args {
		i := strings.IndexByte(rest, '{')
		j := strings.IndexByte(rest, '}')
		if i < 0 || j < i {
			panic("buildPath: more args than placeholders in " + tmpl)
		}
		if arg == "" {
			return "", fmt.Errorf("authzd client: %s is required", rest[i+1:j])
		}
		b.WriteString(rest[:i])
		b.WriteString(url.PathEscape(arg))
		rest = rest[j+1:]
	}
	if strings.IndexByte(rest, '{') >= 0 {
		panic("buildPath: fewer args than placeholders in " + tmpl)
	}
	b.WriteString(rest)
	return b.String(), nil
}
