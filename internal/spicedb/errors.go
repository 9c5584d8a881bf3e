package spicedb

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scailabs/authzd/internal/authz"
)

func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }

func isFailedPrecondition(err error) bool { return status.Code(err) == codes.FailedPrecondition }

// mapError turns a gRPC error from SpiceDB into a domain error. Anything that
// means SpiceDB could not answer is EUNAVAILABLE, which callers must treat as
// "no decision", never as a yes.
func mapError(err error, op string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return authz.Wrap(authz.EUNAVAILABLE, err, "SpiceDB did not answer in time")
	}
	switch status.Code(err) {
	// Unknown and Internal are how SpiceDB reports its own datastore failing
	// (e.g. "unable to query relationships: ... i/o timeout"): SpiceDB could not
	// answer, which for callers is the same as SpiceDB being unreachable.
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted, codes.Aborted,
		codes.Unknown, codes.Internal:
		return authz.Wrap(authz.EUNAVAILABLE, err, "SpiceDB is unavailable")
	default:
		return authz.Wrap(authz.EINTERNAL, err, op+" failed")
	}
}

func statusOf(err error) (string, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return "", false
	}
	return st.Code().String(), true
}
