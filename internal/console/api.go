package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/scailabs/authzd/internal/authz"
	authzhttp "github.com/scailabs/authzd/internal/http"
)

// recorder is the response of an in-process API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// apiError is an API answer other than 2xx, with the API's message.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

// call runs one /v1 request in process as the session's token, naming its
// actor, and decodes the answer into out (when not nil). A 4xx carries the
// API's message for the page; a 5xx is an internal error.
func (c *Console) call(ctx context.Context, method, path string, body, out any) error {
	s := sessionFrom(ctx)
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	// A fresh routing context: the API's router must not take the console's
	// request for one it is mounted under.
	ctx = context.WithValue(ctx, chi.RouteCtxKey, (*chi.Context)(nil))
	req, err := http.NewRequestWithContext(authzhttp.AsToken(ctx, s.token, "console"), method, path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.actor != "" {
		req.Header.Set("X-Actor-User-Id", s.actor)
	}
	rec := &recorder{header: http.Header{}}
	c.o.API.ServeHTTP(rec, req)
	if rec.status >= 300 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(rec.body.Bytes(), &e)
		return &apiError{status: rec.status, code: e.Error.Code, message: e.Error.Message}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(rec.body.Bytes(), out)
}

// userError is the API's message when the caller can fix the request (a
// 4xx), with its status; ok is false for errors of ours.
func userError(err error) (status int, msg string, ok bool) {
	var ae *apiError
	if errors.As(err, &ae) && ae.status < 500 {
		return ae.status, ae.message, true
	}
	if authz.ErrorCode(err) == authz.EINVALID {
		return http.StatusBadRequest, authz.ErrorMessage(err), true
	}
	return 0, "", false
}

// p builds an API path: each "{}" of pattern becomes the next segment, escaped.
func p(pattern string, segs ...string) string {
	var b strings.Builder
	for _, s := range segs {
		before, after, ok := strings.Cut(pattern, "{}")
		if !ok {
			break
		}
		b.WriteString(before)
		b.WriteString(url.PathEscape(s))
		pattern = after
	}
	b.WriteString(pattern)
	return b.String()
}
