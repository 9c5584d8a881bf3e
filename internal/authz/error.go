package authz

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status in the http adapter.
const (
	EINVALID      = "invalid"      // the caller's input is wrong
	ENOTFOUND     = "not_found"    // the named thing does not exist
	ECONFLICT     = "conflict"     // the request contradicts current state
	EUNAUTHORIZED = "unauthorized" // no or unknown credentials
	EFORBIDDEN    = "forbidden"    // credentials lack the scope
	ETOOLARGE     = "too_large"    // the request body is over the limit
	EUNAVAILABLE  = "unavailable"  // a dependency cannot answer; never a decision
	EINTERNAL     = "internal"     // our fault; details are logged, not shown
)

// Error is the domain error: a code from the list above and a message safe to show to callers.
type Error struct {
	Code    string
	Message string
	// Err is the underlying cause. It is logged but never shown to callers.
	Err error
	// Line is the 1-based line of a document the error is about (see
	// AtLine); 0 when it is about no line.
	Line int
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted, caller-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error that hides err from callers behind message.
func Wrap(code string, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// AtLine returns err as an *Error about line of a document, keeping its
// code and message.
func AtLine(line int, err error) *Error {
	return &Error{Code: ErrorCode(err), Message: ErrorMessage(err), Err: err, Line: line}
}

// ErrorLine returns the line of the first *Error in err's chain that names
// one, or 0.
func ErrorLine(err error) int {
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return 0
		}
		if e.Line > 0 {
			return e.Line
		}
		err = e.Err
	}
	return 0
}

// ErrorCode returns the code of the first *Error in err's chain, or EINTERNAL.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of err, or a generic one for internal errors.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EINTERNAL {
		return e.Message
	}
	return "internal error"
}

// UnknownResourceType is the error of a resource type the schema does not define.
func UnknownResourceType(typ string, known []string) *Error {
	return Errorf(EINVALID, "unknown resource type %q (known: %v)", truncate(typ), known)
}
