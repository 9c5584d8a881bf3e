package http

import (
	"encoding/json"
	"errors"

	"io"
	"net/http"
	"strings"

	"github.com/scailabs/authzd/internal/authz"
)

// codeMethodNotAllowed is an HTTP-only error code.
const codeMethodNotAllowed = "method_not_allowed"

// statuses maps domain error codes to HTTP statuses.
var statuses = map[string]int{
	authz.EINVALID:       http.StatusBadRequest,
	authz.ENOTFOUND:      http.StatusNotFound,
	authz.ECONFLICT:      http.StatusConflict,
	authz.EUNAUTHORIZED:  http.StatusUnauthorized,
	authz.EFORBIDDEN:     http.StatusForbidden,
	authz.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	authz.EUNAVAILABLE:   http.StatusServiceUnavailable,
	authz.EINTERNAL:      http.StatusInternalServerError,
	codeMethodNotAllowed: http.StatusMethodNotAllowed,
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

// errorDetail is the body of an error. Status repeats the HTTP status so that
// the object also has the shape of an AuthZEN per-item error ({"status",
// "message"}); it is empty on the per-item errors of a bulk check.
type errorDetail struct {
	Status    int    `json:"status,omitempty"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
	// Line is the 1-based line of a record document the error is about.
	Line int `json:"line,omitempty"`
}

// Error writes err as {"error": {"code", "message"}}. Internal errors and
// unavailable dependencies are logged with the request id; callers see only
// the caller-safe message.
func (s *Server) Error(w http.ResponseWriter, r *http.Request, err error) {
	rid := RequestID(r.Context())
	switch authz.ErrorCode(err) {
	case authz.EINTERNAL:
		s.logger.ErrorContext(r.Context(), "internal error", "err", err, "request_id", rid, "method", r.Method, "path", r.URL.Path)
	case authz.EUNAVAILABLE:
		s.logger.WarnContext(r.Context(), "dependency unavailable", "err", err, "request_id", rid, "method", r.Method, "path", r.URL.Path)
	}
	writeError(w, r, err)
}

// writeError is Error without the log, for callers that logged already.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := authz.ErrorCode(err)
	status, ok := statuses[code]
	if !ok {
		code, status = authz.EINTERNAL, http.StatusInternalServerError
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="authzd"`)
	}
	detail := errorDetail{Status: status, Code: code, Message: authz.ErrorMessage(err), RequestID: RequestID(r.Context()),
		Line: authz.ErrorLine(err)}
	writeJSON(w, status, errorBody{Error: detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads exactly one JSON object into v, refusing unknown fields and
// trailing data. An empty body is allowed when emptyOK.
func decode(r *http.Request, v any, emptyOK bool) error {
	return decodeJSON(r, v, emptyOK, true)
}

// decodeOpen is decode for bodies whose standard demands that receivers
// ignore unknown fields (AuthZEN): everything else is as strict.
func decodeOpen(r *http.Request, v any) error {
	return decodeJSON(r, v, false, false)
}

func decodeJSON(r *http.Request, v any, emptyOK, strict bool) error {
	dec := json.NewDecoder(r.Body)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		var syntax *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			if emptyOK {
				return nil
			}
			return authz.Errorf(authz.EINVALID, "request body is empty; a JSON object is required")
		case errors.As(err, &tooLarge):
			return authz.Errorf(authz.ETOOLARGE, "request body is over %d bytes", tooLarge.Limit)
		case errors.As(err, &syntax):
			return authz.Errorf(authz.EINVALID, "request body is not valid JSON (at byte %d)", syntax.Offset)
		case errors.As(err, &typeErr):
			return authz.Errorf(authz.EINVALID, "field %q must be %s", typeErr.Field, typeErr.Type)
		// encoding/json has no typed error for unknown fields; its message is the only signal.
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return authz.Errorf(authz.EINVALID, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return authz.Errorf(authz.EINVALID, "request body is truncated JSON")
		default:
			return authz.Errorf(authz.EINVALID, "request body is not a valid JSON object")
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return authz.Errorf(authz.ETOOLARGE, "request body is over %d bytes", tooLarge.Limit)
		}
		return authz.Errorf(authz.EINVALID, "request body has data after the JSON object")
	}
	return nil
}
