package spicedb

import (
	"context"
	"errors"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// A provisioning write is planned, then executed: the plan reads what the
// write depends on through a Reader and returns its steps, each one SpiceDB
// write under preconditions; the execution applies the steps in order. The
// real write executes them against SpiceDB, with its retries (run); the
// what-if executes the same plans on its private copy (Apply), so that a
// change is predicted by the rules the write itself follows.

// Step is one write of a plan: a WriteRelationships of Updates, or, when
// Delete is set, a DeleteRelationships of every relationship matching it;
// either only when every precondition in Pre holds.
type Step struct {
	Updates []*v1.RelationshipUpdate
	Delete  *v1.RelationshipFilter
	Pre     []*v1.Precondition
	// Failed is the error when Pre does not hold; nil leaves SpiceDB's own.
	Failed error
	// Optional marks a clean-up: when Pre does not hold it is skipped, and
	// the write answers with the revision of its last step that is not optional.
	Optional bool
}

// Reader reads the relationships matching f, at most limit (0: all),
// including every write committed before the call.
type Reader interface {
	Read(ctx context.Context, f *v1.RelationshipFilter, limit uint32) ([]*v1.Relationship, error)
}

// Write is a provisioning write's plan.
type Write struct {
	// Plan reads through r what the write depends on and returns its steps.
	Plan func(ctx context.Context, r Reader) ([]Step, error)
	// Gone is set for a read-modify-write, whose last step is conditioned on
	// the state Plan read: when that condition fails, Gone reports whether
	// the parent object disappeared (its not-found error); if not, the state
	// changed under the write, which plans again.
	Gone func(ctx context.Context, r Reader) error
}

// Plans builds the plans of the provisioning writes under the graph's schema.
type Plans struct{ m *model }

// Plans returns the planner of the graph's writes.
func (g *Graph) Plans() Plans { return Plans{m: g.model} }

// steps is a write of fixed steps, which reads nothing.
func steps(s ...Step) Write {
	return Write{Plan: func(context.Context, Reader) ([]Step, error) { return s, nil }}
}

// ErrStale is what executing a read-modify-write's plan returns when the
// state it read changed before its last step (its failed precondition).
var ErrStale = errStale

// execute applies steps in order with apply, which answers a step's
// revision, or its Failed error when its preconditions do not hold.
func execute(ctx context.Context, steps []Step, apply func(context.Context, Step) (string, error)) (string, error) {
	var token string
	for _, s := range steps {
		t, err := apply(ctx, s)
		if s.Optional {
			if err != nil && !errors.Is(err, errSkipped) {
				return "", err
			}
			continue
		}
		if err != nil {
			return "", err
		}
		token = t
	}
	return token, nil
}

// run plans w on SpiceDB's latest state and executes it there; a
// read-modify-write starts over from a new plan when its state changed
// (readModifyWrite).
func (g *Graph) run(ctx context.Context, w Write) (string, error) {
	once := func(ctx context.Context) (string, error) {
		steps, err := w.Plan(ctx, graphReader{g})
		if err != nil {
			return "", err
		}
		return execute(ctx, steps, g.apply)
	}
	if w.Gone == nil {
		return once(ctx)
	}
	return g.readModifyWrite(ctx, func(ctx context.Context) error { return w.Gone(ctx, graphReader{g}) }, once)
}

// apply executes one step against SpiceDB (retried, see retryWrite).
func (g *Graph) apply(ctx context.Context, s Step) (string, error) {
	if s.Delete != nil {
		return g.deleteWhere(ctx, s.Delete, s.Pre, s.Failed)
	}
	return g.write(ctx, s.Updates, s.Pre, s.Failed)
}

// graphReader reads SpiceDB's latest state (see Graph.read).
type graphReader struct{ g *Graph }

func (r graphReader) Read(ctx context.Context, f *v1.RelationshipFilter, limit uint32) ([]*v1.Relationship, error) {
	return r.g.readLimit(ctx, f, limit)
}

// Apply plans w through r and executes it with apply, once: for a state
// nobody else writes meanwhile (the what-if's copy), so that a failed
// precondition of a read-modify-write is its parent gone (Gone's error), or
// an error.
func Apply(ctx context.Context, w Write, r Reader, apply func(context.Context, Step) (string, error)) (string, error) {
	steps, err := w.Plan(ctx, r)
	if err != nil {
		return "", err
	}
	token, err := execute(ctx, steps, apply)
	if errors.Is(err, errStale) && w.Gone != nil {
		if gone := w.Gone(ctx, r); gone != nil {
			return "", gone
		}
		return "", authz.Wrap(authz.EINTERNAL, err, "a write's precondition failed on a state nobody else writes")
	}
	return token, err
}
