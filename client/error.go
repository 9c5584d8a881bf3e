package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error codes authzd answers with, in {"error": {"code": ...}}.
const (
	CodeInvalid      = "invalid"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeTooLarge     = "too_large"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
)

// Error is an answer from authzd (or a proxy in front of it) that is not a success.
type Error struct {
	Status    int    `json:"-"`          // HTTP status; 0 on a CheckBulk item
	Code      string `json:"code"`       // one of the Code constants
	Message   string `json:"message"`    // authzd's message, safe to show
	RequestID string `json:"request_id"` // X-Request-Id, to find the request in authzd's logs
	// Line is the first bad line (1-based) of a refused Import document; 0 otherwise.
	Line int `json:"line,omitempty"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("authzd: %d %s: %s", e.Status, e.Code, e.Message)
	if e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	return s
}

// ErrorCode returns the code of the *Error in err's chain, or "" if there is none
// (a network failure, a timeout, a bad argument).
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// IsInvalid reports whether authzd rejected the request as malformed (400).
func IsInvalid(err error) bool { return ErrorCode(err) == CodeInvalid }

// IsNotFound reports whether the named partner, tenant, role, resource or token does not exist (404).
func IsNotFound(err error) bool { return ErrorCode(err) == CodeNotFound }

// IsConflict reports whether the request contradicts current state (409), such as
// deleting a partner that still has tenants.
func IsConflict(err error) bool { return ErrorCode(err) == CodeConflict }

// IsUnauthorized reports whether the token is missing or unknown (401).
func IsUnauthorized(err error) bool { return ErrorCode(err) == CodeUnauthorized }

// IsForbidden reports whether the token lacks the scope the call needs (403).
func IsForbidden(err error) bool { return ErrorCode(err) == CodeForbidden }

// IsUnavailable reports whether authzd, or a proxy in front of it, said it cannot answer
// now (503, 502, 504 or 429). It is false for network errors and timeouts, which are not *Error.
func IsUnavailable(err error) bool { return ErrorCode(err) == CodeUnavailable }

// errorBody is authzd's error document.
type errorBody struct {
	Error Error `json:"error"`
}

// decodeError builds an *Error from a non-2xx answer. A body that is not authzd's error
// document (a proxy's HTML page, say) gets a code derived from the status.
func decodeError(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	var b errorBody
	if json.Unmarshal(body, &b) == nil && b.Error.Code != "" {
		e.Code, e.Message, e.Line = b.Error.Code, b.Error.Message, b.Error.Line
		if e.RequestID == "" {
			e.RequestID = b.Error.RequestID
		}
		return e
	}
	e.Code = codeForStatus(resp.StatusCode)
	e.Message = http.StatusText(resp.StatusCode)
	if e.Message == "" {
		e.Message = fmt.Sprintf("HTTP status %d", resp.StatusCode)
	}
	return e
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeInvalid
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	if status >= 500 {
		return CodeInternal
	}
	return CodeInvalid
}
