package cache

import (
	"context"

	"github.com/scailabs/authzd/internal/authz"
)

// Upstream is all the cache needs of SpiceDB: answering its questions and
// following its changes. authzd's SpiceDB adapter (internal/spicedb) plays
// both roles; the cache's tests play them with a fake.
type Upstream interface {
	Answering
	Following
}

// Answering is how the cache gets SpiceDB's answers.
type Answering interface {
	// Check and CheckBulk answer as SpiceDB does without a cache: the cache
	// hands them every check it cannot take (not ready, a consistency token
	// its stream has not delivered).
	Check(ctx context.Context, c authz.Check) (authz.Decision, error)
	CheckBulk(ctx context.Context, checks []authz.Check) ([]authz.Decision, error)
	// Question resolves a check to what SpiceDB evaluates; an error is the
	// caller's (an unknown permission or resource type).
	Question(c authz.Check) (authz.Question, error)
	// Questions resolves the checks of a bulk check and the consistency
	// token they share; an error names the item at fault.
	Questions(checks []authz.Check) ([]authz.Question, string, error)
	// CheckAt answers one question at exactly the revision at (a barrier).
	CheckAt(ctx context.Context, at string, q authz.Question) (authz.Decision, error)
	// CheckBulkAt answers questions at exactly the revision at, in order,
	// in one call; an item SpiceDB could not answer carries its error in
	// Decision.Err.
	CheckBulkAt(ctx context.Context, at string, qs []authz.Question) ([]authz.Decision, error)
	// CheckHead answers one question at SpiceDB's head revision (fully
	// consistent), for the verifier.
	CheckHead(ctx context.Context, q authz.Question) (bool, error)
}

// Following is how the cache follows SpiceDB's changes.
type Following interface {
	// Changes opens the change stream after the revision from: every
	// relationship change (resume marks included), schema change and
	// checkpoint, one batch per revision, in order, until ctx ends or the
	// stream fails.
	Changes(ctx context.Context, from string) (next func() (authz.ChangeBatch, error), err error)
	// Barrier sends a write that changes nothing and returns its revision,
	// which includes every transaction committed before the call.
	Barrier(ctx context.Context) (string, error)
	// Mark writes a change tagged with the write id id (which starts with
	// authz.ResumeMarkPrefix), after a barrier, so that the stream
	// delivers it.
	Mark(ctx context.Context, id string) error
	// Schema returns the schema text SpiceDB holds.
	Schema(ctx context.Context) (string, error)
	// Relationships calls fn with every relationship on objects of
	// resourceType (whose subject is of subjectType, when set) at exactly
	// the revision at.
	Relationships(ctx context.Context, at, resourceType, subjectType string, fn func(authz.Tuple) error) error
}
