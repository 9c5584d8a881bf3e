// Package whatif predicts which of a tenant's past decisions a proposed
// change would turn around: every question of the decision log's window is
// answered on a private copy of the tenant's part of SpiceDB at one
// revision, before and after the changes are applied to the copy by the
// provisioning writes' own plans (docs/decisions/0007-whatif.md).
package whatif

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/schemadsl/compiler"
	"github.com/authzed/spicedb/pkg/schemadsl/input"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/spicedb"
)

// Graph is what the what-if needs of the SpiceDB adapter: reads at one
// revision, the writes' plans, and how a check resolves.
type Graph interface {
	OpenSnapshot(ctx context.Context, token string, probe *v1.RelationshipFilter) (*spicedb.Snapshot, error)
	Plans() spicedb.Plans
	Target(c authz.Check) (resType, resID, perm string, err error)
}

// Question is one distinct question of the decision log: who, which key,
// on which resource (nil: the tenant), how often and when last decided.
type Question struct {
	Subject       authz.Subject
	Key           authz.Key
	Resource      *authz.Resource
	Decisions     int64
	LastDecidedAt time.Time
}

// Flip is a question whose answer the changes turn around.
type Flip struct {
	Question
	From, To bool
}

// Result is a what-if's prediction.
type Result struct {
	// Questions counts the questions answered before and after.
	Questions int
	// Skipped counts the questions the schema no longer knows (a key or
	// resource type it lost).
	Skipped int
	// Flips are allowed-to-denied first, then by decisions, most first.
	Flips []Flip
	// ZedToken is the revision R the copy was read at.
	ZedToken string
	// Timing of the parts.
	Copy, Before, Changes, After time.Duration
	// Relationships the copy held.
	Relationships int
}

// Engine runs what-ifs. Its workers bound the goroutines that answer
// questions across every what-if of the process.
type Engine struct {
	graph   Graph
	workers chan struct{}
	// Incomplete, when set, is told of each what-if that failed because its
	// copy lacked an object it read.
	Incomplete func()
}

// New returns an engine that answers questions on at most workers goroutines at once.
func New(g Graph, workers int) *Engine {
	return &Engine{graph: g, workers: make(chan struct{}, max(workers, 1))}
}

// refused is the error of a change the write would refuse: the caller's
// mistake (400) with the change's index and the write's message.
func refused(i int, err error) error {
	switch authz.ErrorCode(err) {
	case authz.EINTERNAL, authz.EUNAVAILABLE:
		return err
	}
	return authz.Wrap(authz.EINVALID, err, "changes["+strconv.Itoa(i)+"]: "+authz.ErrorMessage(err))
}

// incomplete is the caller's form of ErrIncomplete (503).
func incomplete(err error) error {
	return authz.Wrap(authz.EUNAVAILABLE, err, "the what-if's copy of the tenant lacks an object the prediction read; it made none")
}

// target is a question as SpiceDB's engine takes it.
type target struct {
	typ, id, perm string
	subject       authz.Subject
}

// Run predicts what changes (in order) would turn around among questions,
// for tenantID, at least as fresh as token (fully consistent without one).
// A change a write would refuse is an EINVALID error naming its index and
// the write's message; a read of an object the copy lacks is an
// EUNAVAILABLE error wrapping ErrIncomplete.
func (e *Engine) Run(ctx context.Context, tenantID, token string, changes []authz.Record, questions []Question) (res Result, err error) {
	defer func() {
		if errors.Is(err, ErrIncomplete) {
			if e.Incomplete != nil {
				e.Incomplete()
			}
			err = incomplete(err)
		}
	}()
	began := time.Now()
	snap, err := e.graph.OpenSnapshot(ctx, token, &v1.RelationshipFilter{ResourceType: typeTenant, OptionalResourceId: tenantID})
	if err != nil {
		return res, err
	}
	res.ZedToken = snap.At()
	schemaText, err := snap.Schema(ctx)
	if err != nil {
		return res, err
	}
	scoped, err := scopedTypes(schemaText)
	if err != nil {
		return res, err
	}
	rep, err := newReplica(ctx, schemaText)
	if err != nil {
		return res, err
	}
	defer rep.close()
	if err := rep.load(ctx, snap, tenantID, scoped); err != nil {
		return res, err
	}
	for _, ids := range rep.s.objs {
		for _, rels := range ids {
			for _, set := range rels {
				res.Relationships += len(set)
			}
		}
	}
	res.Copy = time.Since(began)

	var targets []target
	var asked []Question
	for _, q := range questions {
		typ, id, perm, err := e.graph.Target(authz.Check{TenantID: tenantID, Subject: q.Subject, Key: q.Key, Resource: q.Resource})
		if err != nil {
			res.Skipped++
			continue
		}
		targets = append(targets, target{typ: typ, id: id, perm: perm, subject: q.Subject})
		asked = append(asked, q)
	}
	res.Questions = len(targets)

	t := time.Now()
	before, err := e.answer(ctx, rep, targets)
	if err != nil {
		return res, err
	}
	res.Before = time.Since(t)

	t = time.Now()
	plans := e.graph.Plans()
	for i, c := range changes {
		if _, err := spicedb.Apply(ctx, PlanOf(plans, c), rep, rep.apply); err != nil {
			if errors.Is(err, ErrIncomplete) || ctx.Err() != nil {
				return res, err
			}
			return res, refused(i, err)
		}
	}
	res.Changes = time.Since(t)

	t = time.Now()
	after, err := e.answer(ctx, rep, targets)
	if err != nil {
		return res, err
	}
	res.After = time.Since(t)

	for i := range targets {
		if before[i] != after[i] {
			res.Flips = append(res.Flips, Flip{Question: asked[i], From: before[i], To: after[i]})
		}
	}
	sort.SliceStable(res.Flips, func(i, j int) bool {
		a, b := res.Flips[i], res.Flips[j]
		if a.From != b.From {
			return a.From // allowed-to-denied first
		}
		return a.Decisions > b.Decisions
	})
	return res, nil
}

// answer checks every target on the copy, on the engine's workers.
func (e *Engine) answer(ctx context.Context, rep *replica, targets []target) ([]bool, error) {
	out := make([]bool, len(targets))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	take := func() int {
		mu.Lock()
		defer mu.Unlock()
		if first != nil || next >= len(targets) {
			return -1
		}
		next++
		return next - 1
	}
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			cancel()
		}
	}
	for range cap(e.workers) {
		select {
		case e.workers <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-e.workers; wg.Done() }()
			for i := take(); i >= 0; i = take() {
				ok, err := rep.check(ctx, targets[i])
				if err != nil {
					fail(err)
					return
				}
				out[i] = ok
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, ctx.Err()
}

// PlanOf is the provisioning write a change record stands for.
func PlanOf(p spicedb.Plans, c authz.Record) spicedb.Write {
	put := c.Op != authz.OpDelete
	switch c.Kind {
	case authz.KindPartner:
		if put {
			return p.PutPartner(c.PartnerID)
		}
		return p.DeletePartner(c.PartnerID)
	case authz.KindSuperAdmin:
		return p.SetSuperAdmin(c.User, put)
	case authz.KindPartnerAdmin:
		return p.SetPartnerAdmin(c.PartnerID, c.User, put)
	case authz.KindTenant:
		if put {
			return p.PutTenant(c.TenantID, c.PartnerID)
		}
		return p.DeleteTenant(c.TenantID)
	case authz.KindRole:
		if put {
			return p.PutRole(c.TenantID, c.RoleID, c.Keys)
		}
		return p.DeleteRole(c.TenantID, c.RoleID)
	case authz.KindMember:
		return p.SetMember(c.TenantID, c.RoleID, c.User, put)
	case authz.KindResource:
		if put {
			return p.PutResource(c.TenantID, c.Resource, c.Owner)
		}
		return p.DeleteResource(c.TenantID, c.Resource)
	}
	return spicedb.Write{Plan: func(context.Context, spicedb.Reader) ([]spicedb.Step, error) {
		return nil, authz.Errorf(authz.EINVALID, "unknown kind %q", c.Kind)
	}}
}

// scopedTypes lists the schema's object types whose objects belong to one
// tenant: every definition but subjects, the platform and partners.
func scopedTypes(schemaText string) ([]string, error) {
	compiled, err := compiler.Compile(compiler.InputSchema{Source: input.Source("schema"), SchemaString: schemaText},
		compiler.AllowUnprefixedObjectType())
	if err != nil {
		return nil, fmt.Errorf("compile spicedb's schema for the what-if: %w", err)
	}
	var out []string
	for _, def := range compiled.ObjectDefinitions {
		switch def.GetName() {
		case typeUser, typeServiceAccount, typePlatform, typePartner:
		default:
			out = append(out, def.GetName())
		}
	}
	return out, nil
}

// Questions turns the decision log's groups into questions; a group whose
// subject or key this authzd no longer reads (known) is skipped.
func Questions(groups []authz.DecisionGroup, known func(string) (authz.Key, bool)) (qs []Question, skipped int) {
	qs = make([]Question, 0, len(groups))
	for _, g := range groups {
		subj, err := authz.ParseSubject("user_id", g.ActorUserID)
		k, ok := known(g.Permission)
		if err != nil || !ok {
			skipped++
			continue
		}
		q := Question{Subject: subj, Key: k, Decisions: g.Count, LastDecidedAt: g.Last}
		if g.ResourceType != "" {
			q.Resource = &authz.Resource{Type: g.ResourceType, ID: g.ResourceID}
		}
		qs = append(qs, q)
	}
	return qs, skipped
}
